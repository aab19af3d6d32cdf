import { unixSeconds } from '../../common/unix-time';
import { ApiProperty, ApiSchema } from '@nestjs/swagger';
import { formatNano } from '../../common/money';
import { DecimalField, IntField, StringField } from '../../common/validation';
import { inForce, ModelPrice } from '../entities/model-price.entity';
import { EARLIEST_RECORD_TIME, LATEST_QUERY_TIME, MODEL_MAX_LENGTH, PRINTABLE_PATTERN } from '../usage-fields';

const MAX_PRICE = '1000000';
const priceField = (what: string, example: string) =>
  DecimalField({
    description: `Price of one million ${what}, in major currency units: a decimal string or number with at most 9 decimals (at most ${MAX_PRICE})`,
    example,
    maxDecimals: 9,
    max: MAX_PRICE,
  });

@ApiSchema({ name: 'SetPriceRequest' })
export class SetPriceDto {
  @priceField('uncached input tokens', '2.50')
  input_per_mtok: string;

  @priceField('cached input tokens', '1.25')
  cached_input_per_mtok: string;

  @priceField('output tokens', '10.00')
  output_per_mtok: string;

  @IntField({
    description: 'When this price takes effect (Unix seconds; default now). Records are priced by the version in force at their created_at.',
    example: 1735689600,
    min: EARLIEST_RECORD_TIME,
    max: LATEST_QUERY_TIME,
    optional: true,
  })
  effective_from?: number;
}

export class ModelParamsDto {
  @StringField({ description: 'Model name', example: 'meetkai:functionary-urdu-mini-pak', maxLength: MODEL_MAX_LENGTH, pattern: PRINTABLE_PATTERN })
  model: string;
}

@ApiSchema({ name: 'PriceVersion' })
export class PriceVersionDto {
  @ApiProperty({ enum: ['llm.price'], example: 'llm.price' })
  object: 'llm.price';

  @ApiProperty({ example: 'meetkai:functionary-urdu-mini-pak' })
  model: string;

  @ApiProperty({ example: '2.5', description: 'Major units per million uncached input tokens (exact decimal string)' })
  input_per_mtok: string;

  @ApiProperty({ example: '1.25', description: 'Major units per million cached input tokens (exact decimal string)' })
  cached_input_per_mtok: string;

  @ApiProperty({ example: '10', description: 'Major units per million output tokens (exact decimal string)' })
  output_per_mtok: string;

  @ApiProperty({ type: 'integer', example: 1735689600, description: 'In force from (Unix seconds)' })
  effective_from: number;

  @ApiProperty({ type: 'integer', example: 1735689600, description: 'When this version was written (Unix seconds)' })
  created_at: number;

  static from(version: ModelPrice): PriceVersionDto {
    return {
      object: 'llm.price',
      model: version.model,
      input_per_mtok: formatNano(BigInt(version.inputPerMtokNano)),
      cached_input_per_mtok: formatNano(BigInt(version.cachedInputPerMtokNano)),
      output_per_mtok: formatNano(BigInt(version.outputPerMtokNano)),
      effective_from: unixSeconds(version.effectiveFrom),
      created_at: unixSeconds(version.createdAt),
    };
  }
}

@ApiSchema({ name: 'ModelPrice' })
export class ModelPriceDto {
  @ApiProperty({ enum: ['llm.model_price'], example: 'llm.model_price' })
  object: 'llm.model_price';

  @ApiProperty({ example: 'meetkai:functionary-urdu-mini-pak' })
  model: string;

  @ApiProperty({ type: PriceVersionDto, nullable: true, description: 'The version in force now (null when every version starts later)' })
  current: PriceVersionDto | null;

  @ApiProperty({ type: [PriceVersionDto], description: 'Every version, newest effective_from first' })
  versions: PriceVersionDto[];

  static from(model: string, versions: ModelPrice[], now: number): ModelPriceDto {
    const current = inForce(versions, now);
    return {
      object: 'llm.model_price',
      model,
      current: current ? PriceVersionDto.from(current) : null,
      versions: versions.map(PriceVersionDto.from),
    };
  }
}

@ApiSchema({ name: 'ModelPriceList' })
export class ModelPriceListDto {
  @ApiProperty({ enum: ['list'], example: 'list' })
  object: 'list';

  @ApiProperty({ type: [ModelPriceDto] })
  data: ModelPriceDto[];
}
