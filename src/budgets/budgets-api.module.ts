import { Module } from '@nestjs/common';
import { WorkflowsModule } from '../workflows/workflows.module';
import { BudgetsController } from './budgets.controller';
import { BudgetsModule } from './budgets.module';

@Module({ imports: [BudgetsModule, WorkflowsModule], controllers: [BudgetsController] })
export class BudgetsApiModule {}
