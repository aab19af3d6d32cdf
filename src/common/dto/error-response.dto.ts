import { ApiProperty, ApiPropertyOptional, ApiSchema } from '@nestjs/swagger';
import { ErrorCode, ErrorType } from '../errors';

@ApiSchema({ name: 'FieldProblem' })
export class FieldProblemDto {
  @ApiProperty({ example: 'limit', description: 'The bad field (a dotted path for nested fields)' })
  param: string;

  @ApiProperty({ example: 'must not be greater than 1440' })
  message: string;
}

@ApiSchema({ name: 'ErrorDetail' })
export class ErrorDetailDto {
  @ApiProperty({ example: 'limit: must not be greater than 1440', description: 'Human-readable description' })
  message: string;

  @ApiProperty({ enum: ErrorType, enumName: 'ErrorType', example: ErrorType.InvalidRequest })
  type: ErrorType;

  @ApiProperty({ enum: ErrorCode, enumName: 'ErrorCode', example: ErrorCode.ValidationFailed })
  code: ErrorCode;

  @ApiProperty({ type: String, nullable: true, example: 'limit', description: 'The first bad field, or null' })
  param: string | null;

  @ApiPropertyOptional({ type: [FieldProblemDto], description: 'Every bad field (validation errors only)' })
  details?: FieldProblemDto[];
}

/** The one error shape of every non-2xx answer. */
@ApiSchema({ name: 'ErrorResponse' })
export class ErrorResponseDto {
  @ApiProperty({ type: ErrorDetailDto })
  error: ErrorDetailDto;
}
