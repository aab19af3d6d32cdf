import { applyDecorators, ValidationError, ValidationPipe } from '@nestjs/common';
import { ApiProperty, ApiPropertyOptional, ApiPropertyOptions } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import {
  IsBoolean,
  IsIn,
  IsInt,
  IsNotEmpty,
  IsOptional,
  IsString,
  Matches,
  Max,
  MaxLength,
  Min,
  MinLength,
  ValidateIf,
} from 'class-validator';
import { AppException, FieldProblem } from './errors';

/** Flattens class-validator's tree into one problem per bad field, with dotted/indexed paths. */
export function flattenValidationErrors(errors: ValidationError[], parent = ''): FieldProblem[] {
  const problems: FieldProblem[] = [];
  for (const error of errors) {
    const path = /^\d+$/.test(error.property)
      ? `${parent}[${error.property}]`
      : parent
        ? `${parent}.${error.property}`
        : error.property;
    const messages = Object.entries(error.constraints ?? {}).map(([name, message]) =>
      name === 'whitelistValidation' ? 'is not a known field' : message.replace(new RegExp(`^${escapeRegExp(error.property)} `), ''),
    );
    if (messages.length > 0) problems.push({ param: path, message: messages.join(', ') });
    if (error.children?.length) problems.push(...flattenValidationErrors(error.children, path));
  }
  return problems;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The global pipe: transform, strip nothing silently: unknown fields are a 400 naming each. */
export function createValidationPipe(): ValidationPipe {
  return new ValidationPipe({
    transform: true,
    whitelist: true,
    forbidNonWhitelisted: true,
    forbidUnknownValues: true,
    validationError: { target: false, value: false },
    exceptionFactory: (errors) => AppException.validation(flattenValidationErrors(errors)),
  });
}

interface FieldOptions {
  description: string;
  example?: unknown;
  optional?: boolean;
  nullable?: boolean;
}

function apiProperty(options: FieldOptions, schema: ApiPropertyOptions) {
  const merged = {
    description: options.description,
    example: options.example,
    nullable: options.nullable || undefined,
    ...schema,
  } as ApiPropertyOptions;
  return options.optional ? ApiPropertyOptional(merged) : ApiProperty(merged);
}

function presence(options: FieldOptions) {
  if (options.nullable) return [ValidateIf((_o, value) => value !== null && value !== undefined)];
  return options.optional ? [IsOptional()] : [];
}

/** A string field: validator and OpenAPI schema from one declaration. */
export function StringField(options: FieldOptions & { minLength?: number; maxLength: number; pattern?: RegExp; patternMessage?: string }) {
  const minLength = options.minLength ?? 1;
  return applyDecorators(
    ...presence(options),
    IsString(),
    ...(minLength > 0 ? [IsNotEmpty(), MinLength(minLength)] : []),
    MaxLength(options.maxLength),
    ...(options.pattern ? [Matches(options.pattern, { message: options.patternMessage ?? `must match ${options.pattern}` })] : []),
    apiProperty(options, {
      type: String,
      minLength,
      maxLength: options.maxLength,
      pattern: options.pattern?.source,
    }),
  );
}

/** An enum field given as a readonly list of values. */
export function EnumField<T extends string>(values: readonly T[], options: FieldOptions & { enumName: string; default?: T }) {
  return applyDecorators(
    ...presence(options),
    IsIn(values as T[], { message: `must be one of: ${values.join(', ')}` }),
    apiProperty(options, { enum: values as T[], enumName: options.enumName, default: options.default }),
  );
}

/** An integer field with bounds; query strings are converted (strictly: "12abc" stays invalid). */
export function IntField(options: FieldOptions & { min?: number; max?: number; default?: number; fromQuery?: boolean }) {
  return applyDecorators(
    ...presence(options),
    ...(options.fromQuery ? [Transform(({ value }) => toIntegerOrRaw(value))] : []),
    IsInt(),
    ...(options.min !== undefined ? [Min(options.min)] : []),
    ...(options.max !== undefined ? [Max(options.max)] : []),
    apiProperty(options, {
      type: 'integer',
      minimum: options.min,
      maximum: options.max,
      default: options.default,
    }),
  );
}

/** A boolean field; query strings accept exactly `true` and `false`. */
export function BoolField(options: FieldOptions & { default?: boolean; fromQuery?: boolean }) {
  return applyDecorators(
    ...presence(options),
    ...(options.fromQuery ? [Transform(({ value }) => (value === 'true' ? true : value === 'false' ? false : value))] : []),
    IsBoolean(),
    apiProperty(options, { type: Boolean, default: options.default }),
  );
}

export function toIntegerOrRaw(value: unknown): unknown {
  if (typeof value === 'string' && /^-?\d{1,16}$/.test(value)) return Number(value);
  return value;
}
