import { Module } from '@nestjs/common';
import { AlertsModule } from '../alerts/alerts.module';
import { BudgetsModule } from '../budgets/budgets.module';
import { ReservationsModule } from '../reservations/reservations.module';
import { UsageModule } from '../usage/usage.module';
import { BudgetChangeWorkflow } from './budget-change.workflow';
import { EvaluationEnqueuer } from './evaluation-enqueuer';
import { IngestWorkflow } from './ingest.workflow';

/**
 * The side effects of requests, each in one place a reader reaches from the controller: what an
 * ingest triggers ({@link IngestWorkflow}) and what a budget change triggers ({@link BudgetChangeWorkflow}).
 */
@Module({
  imports: [UsageModule, BudgetsModule, AlertsModule, ReservationsModule],
  providers: [IngestWorkflow, BudgetChangeWorkflow, EvaluationEnqueuer],
  exports: [IngestWorkflow, BudgetChangeWorkflow],
})
export class WorkflowsModule {}
