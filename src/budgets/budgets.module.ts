import { Module, OnModuleInit } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { AuthModule } from '../auth/auth.module';
import { UsageModule } from '../usage/usage.module';
import { UsageIngestService } from '../usage/usage-ingest.service';
import { BudgetCheckService } from './budget-check.service';
import { BudgetGateController } from './budget-gate.controller';
import { BudgetGateService } from './budget-gate.service';
import { BudgetStateService } from './budget-state.service';
import { Budget } from './budget.entity';
import { BudgetsController } from './budgets.controller';
import { BudgetsService } from './budgets.service';

/**
 * Budgets, their live spend and the enforcement state. Import it for the services (the alerts
 * worker uses {@link BudgetStateService}); the HTTP side is {@link BudgetsApiModule}.
 */
@Module({
  imports: [TypeOrmModule.forFeature([Budget]), AuthModule, UsageModule],
  providers: [BudgetsService, BudgetStateService, BudgetCheckService],
  exports: [BudgetsService, BudgetStateService, BudgetCheckService],
})
export class BudgetsModule implements OnModuleInit {
  constructor(
    private readonly ingest: UsageIngestService,
    private readonly state: BudgetStateService,
  ) {}

  /** Ingest that touches a budgeted scope re-evaluates it before the ingest response is sent. */
  onModuleInit(): void {
    this.ingest.onIngested(async (event) => {
      await this.state.refreshForUsage(event.orgId, event.apiKeyIds);
    });
  }
}

@Module({ imports: [BudgetsModule], controllers: [BudgetGateController, BudgetsController], providers: [BudgetGateService] })
export class BudgetsApiModule {}
