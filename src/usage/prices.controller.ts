import { Body, Controller, Get, Param, Put } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import { Auth, Authenticated } from '../auth/auth.decorators';
import { Principal } from '../auth/principal';
import { ALL_ROLES, Role } from '../auth/role';
import { notFound, Operation } from '../common/api-responses';
import { SdkNamespace } from '../common/sdk-namespace';
import { ModelParamsDto, ModelPriceDto, ModelPriceListDto, PriceVersionDto, SetPriceDto } from './dto/price.dto';
import { PriceBookService } from './price-book.service';

@ApiTags('prices')
@SdkNamespace('llm.prices')
@Controller('api/v1/llm/prices')
export class PricesController {
  constructor(private readonly priceBook: PriceBookService) {}

  @Put(':model')
  @Authenticated(Role.ClusterAdmin)
  @Operation({
    summary: 'Set a model price',
    description:
      'Adds a price version in force from `effective_from` (default now); a version with the same effective_from is replaced. ' +
      'Older versions keep pricing older records. Prices apply at ingest: stored records are never re-priced.',
    response: PriceVersionDto,
  })
  async set(@Auth() principal: Principal, @Param() params: ModelParamsDto, @Body() body: SetPriceDto): Promise<PriceVersionDto> {
    return PriceVersionDto.from(await this.priceBook.set(principal, params.model, body));
  }

  @Get(':model')
  @Authenticated(...ALL_ROLES)
  @Operation({
    summary: 'Get a model price',
    description: 'The version in force now and every version of the model.',
    response: ModelPriceDto,
    notFound: notFound('Price for model', 'meetkai:functionary-urdu-mini-pak', 'The model has no price'),
  })
  async get(@Param() params: ModelParamsDto): Promise<ModelPriceDto> {
    return ModelPriceDto.from(params.model, await this.priceBook.versions(params.model), nowSeconds());
  }

  @Get()
  @Authenticated(...ALL_ROLES)
  @Operation({ summary: 'List model prices', description: 'Every priced model, by name, with all its versions.', response: ModelPriceListDto })
  async list(): Promise<ModelPriceListDto> {
    const now = nowSeconds();
    return { object: 'list', data: [...(await this.priceBook.all())].map(([model, versions]) => ModelPriceDto.from(model, versions, now)) };
  }
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
