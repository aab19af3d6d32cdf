import { Global, Module } from '@nestjs/common';
import { JobFailures } from './job-failures';
import { QueueErrors } from './queue-errors';
import { MetricsController } from './metrics.controller';
import { MetricsService } from './metrics.service';

@Global()
@Module({ controllers: [MetricsController], providers: [MetricsService, JobFailures, QueueErrors], exports: [MetricsService, JobFailures, QueueErrors] })
export class MetricsModule {}
