import { Controller, Get, Inject } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiProperty, ApiSchema, ApiTags } from '@nestjs/swagger';
import { InjectDataSource } from '@nestjs/typeorm';
import Redis from 'ioredis';
import { DataSource } from 'typeorm';
import { SdkNamespace } from '../common/sdk-namespace';
import { Public } from '../auth/auth.decorators';
import { ApiErrorResponse } from '../common/api-responses';
import { AppException, ErrorCode } from '../common/errors';
import { withLateTimeout } from '../common/late-timer';
import { REDIS } from '../redis/redis.module';

@ApiSchema({ name: 'Health' })
export class HealthDto {
  @ApiProperty({ enum: ['ok'], example: 'ok' })
  status: 'ok';
}

const CHECK_TIMEOUT_MS = 2000;
const NOT_READY_EXAMPLE = AppException.unavailable(ErrorCode.NotReady, 'Not ready: database unreachable').body();
const UNKNOWN_QUERY_EXAMPLE = AppException.validation([{ param: 'verbose', message: 'is not a known field' }]).body();
const UnknownQuery = () => ApiErrorResponse(400, 'A query parameter was sent: probes take none', UNKNOWN_QUERY_EXAMPLE);

@ApiTags('health')
@SdkNamespace('health')
@Controller('health')
export class HealthController {
  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    @Inject(REDIS) private readonly redis: Redis,
  ) {}

  @Get('live')
  @Public()
  @ApiOperation({ summary: 'Liveness', description: 'The process is up and serving HTTP.' })
  @ApiOkResponse({ type: HealthDto, description: 'OK' })
  @UnknownQuery()
  live(): HealthDto {
    return { status: 'ok' };
  }

  @Get('ready')
  @Public()
  @ApiOperation({ summary: 'Readiness', description: 'PostgreSQL and Redis both answer.' })
  @ApiOkResponse({ type: HealthDto, description: 'OK' })
  @UnknownQuery()
  @ApiErrorResponse(503, 'The database or Redis does not answer', NOT_READY_EXAMPLE)
  async ready(): Promise<HealthDto> {
    const [database, redis] = await Promise.allSettled([
      withLateTimeout(this.dataSource.query('SELECT 1'), CHECK_TIMEOUT_MS),
      withLateTimeout(this.redis.ping(), CHECK_TIMEOUT_MS),
    ]);
    const down = [database.status === 'rejected' ? 'database' : null, redis.status === 'rejected' ? 'redis' : null].filter(
      (name): name is string => name !== null,
    );
    if (down.length > 0) {
      throw AppException.unavailable(ErrorCode.NotReady, `Not ready: ${down.join(' and ')} unreachable`, 5);
    }
    return { status: 'ok' };
  }
}
