import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ApiKeyCache } from './api-key-cache';
import { ApiKey } from './api-key.entity';
import { ApiKeysController } from './api-keys.controller';
import { ApiKeysService } from './api-keys.service';
import { AuthGuard } from './auth.guard';
import { NoUnexpectedInputGuard } from '../common/http-guards';
import { Org } from './org.entity';
import { OrgsController } from './orgs.controller';
import { OrgsService } from './orgs.service';
import { RateLimiter } from './rate-limiter';

@Module({
  imports: [TypeOrmModule.forFeature([Org, ApiKey])],
  controllers: [OrgsController, ApiKeysController],
  providers: [OrgsService, ApiKeysService, ApiKeyCache, RateLimiter, { provide: APP_GUARD, useClass: AuthGuard }, { provide: APP_GUARD, useClass: NoUnexpectedInputGuard }],
  exports: [OrgsService, ApiKeysService],
})
export class AuthModule {}
