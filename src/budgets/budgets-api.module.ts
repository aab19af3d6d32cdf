import { Module } from '@nestjs/common';
import { WorkflowsModule } from '../workflows/workflows.module';
import { BudgetGateController } from './budget-gate.controller';
import { BudgetGateService } from './budget-gate.service';
import { BudgetsController } from './budgets.controller';
import { BudgetsModule } from './budgets.module';

@Module({ imports: [BudgetsModule, WorkflowsModule], controllers: [BudgetGateController, BudgetsController], providers: [BudgetGateService] })
export class BudgetsApiModule {}
