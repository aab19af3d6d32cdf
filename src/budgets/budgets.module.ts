import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { AuthModule } from '../auth/auth.module';
import { UsageModule } from '../usage/usage.module';
import { BlockStateStore } from './budget-block-store';
import { BudgetCheckService } from './budget-check.service';
import { BudgetEvaluator } from './budget-evaluator';
import { BudgetStateRefresher } from './budget-state-refresher';
import { Budget } from './budget.entity';
import { BudgetRepository } from './budget.repository';
import { BudgetsService } from './budgets.service';

/**
 * Budgets, their evaluation and the enforcement state, one job per class: {@link BudgetsService}
 * stores them, {@link BudgetEvaluator} evaluates spend in windows, {@link BlockStateStore} keeps
 * block states in Redis (ordered writes, cached in memory), {@link BudgetStateRefresher} rewrites
 * them from evaluations, {@link BudgetCheckService} answers the gateway. The HTTP side is
 * BudgetsApiModule (budgets-api.module.ts).
 */
@Module({
  imports: [TypeOrmModule.forFeature([Budget]), AuthModule, UsageModule],
  providers: [BudgetsService, BudgetRepository, BudgetEvaluator, BlockStateStore, BudgetStateRefresher, BudgetCheckService],
  exports: [BudgetsService, BudgetRepository, BudgetEvaluator, BlockStateStore, BudgetStateRefresher, BudgetCheckService],
})
export class BudgetsModule {}
