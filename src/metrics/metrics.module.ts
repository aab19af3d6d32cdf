import { Global, Module } from '@nestjs/common';
import { JobFailures } from './job-failures';
import { MetricsController } from './metrics.controller';
import { MetricsService } from './metrics.service';

@Global()
@Module({ controllers: [MetricsController], providers: [MetricsService, JobFailures], exports: [MetricsService, JobFailures] })
export class MetricsModule {}
