import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { In, Repository } from 'typeorm';
import { Principal } from '../auth/principal';
import { AppException } from '../common/errors';
import { parseDecimalToNano, TokenPrices } from '../common/money';
import { SetPriceDto } from './dto/price.dto';
import { IngestMetrics } from './ingest-metrics';
import { inForce, ModelPrice } from './entities/model-price.entity';

/** Finds the price in force for a model at a time (Unix seconds), or undefined when it has none. */
export type PriceResolver = (model: string, at: number) => TokenPrices | undefined;

export function tokenPrices(version: ModelPrice): TokenPrices {
  return {
    inputPerMtokNano: BigInt(version.inputPerMtokNano),
    cachedInputPerMtokNano: BigInt(version.cachedInputPerMtokNano),
    outputPerMtokNano: BigInt(version.outputPerMtokNano),
  };
}

/** The price book (SPEC §3.1): versions per model, each in force from its `effective_from`. */
@Injectable()
export class PriceBookService {
  constructor(
    @InjectRepository(ModelPrice) private readonly prices: Repository<ModelPrice>,
    private readonly metrics: IngestMetrics,
  ) {}

  /** Adds a price version (or replaces the one with the same model and effective_from). */
  async set(principal: Principal, model: string, dto: SetPriceDto): Promise<ModelPrice> {
    const effectiveFrom = new Date((dto.effective_from ?? Math.floor(Date.now() / 1000)) * 1000);
    await this.prices.upsert(
      {
        model,
        effectiveFrom,
        inputPerMtokNano: parseDecimalToNano(dto.input_per_mtok).toString(),
        cachedInputPerMtokNano: parseDecimalToNano(dto.cached_input_per_mtok).toString(),
        outputPerMtokNano: parseDecimalToNano(dto.output_per_mtok).toString(),
        createdBy: principal.apiKeyId,
      },
      ['model', 'effectiveFrom'],
    );
    this.metrics.invalidate(); // a new model may now have its own spend label
    return this.prices.findOneByOrFail({ model, effectiveFrom });
  }

  /** Every version of a model, newest effective_from first; 404 when the model has none. */
  async versions(model: string): Promise<ModelPrice[]> {
    const versions = await this.prices.find({ where: { model }, order: { effectiveFrom: 'DESC' } });
    if (versions.length === 0) throw AppException.notFound('Price for model', model);
    return versions;
  }

  /** Every version of every model, by model, newest effective_from first. */
  async all(): Promise<Map<string, ModelPrice[]>> {
    const versions = await this.prices.find({ order: { model: 'ASC', effectiveFrom: 'DESC' } });
    return groupByModel(versions);
  }

  /** Loads the versions of these models once, for pricing a batch of records. */
  async resolver(models: string[]): Promise<PriceResolver> {
    const versions = models.length ? await this.prices.find({ where: { model: In(models) }, order: { effectiveFrom: 'DESC' } }) : [];
    const byModel = groupByModel(versions);
    return (model, at) => {
      const version = inForce(byModel.get(model) ?? [], at);
      return version ? tokenPrices(version) : undefined;
    };
  }
}

function groupByModel(versions: ModelPrice[]): Map<string, ModelPrice[]> {
  const byModel = new Map<string, ModelPrice[]>();
  for (const version of versions) byModel.set(version.model, [...(byModel.get(version.model) ?? []), version]);
  return byModel;
}
