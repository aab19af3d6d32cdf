// Every migration, in order. `npm run migration:generate -- Name` adds new ones here.
import { Foundation1795296150373 } from './1795296150373-Foundation';
import { Usage1795296445061 } from './1795296445061-Usage';
import { Budgets1795297154288 } from './1795297154288-Budgets';
import { Alerts1795297480078 } from './1795297480078-Alerts';
import { UsageRollupsByKey1795298831442 } from './1795298831442-UsageRollupsByKey';
import { AlertPctUpToOneBillion1796101696967 } from './1796101696967-AlertPctUpToOneBillion';
import { EvaluationBacklog1796101712392 } from './1796101712392-EvaluationBacklog';
import { Reservations1796101800000 } from './1796101800000-Reservations';

export const MIGRATIONS: Function[] = [Foundation1795296150373, Usage1795296445061, Budgets1795297154288, Alerts1795297480078, UsageRollupsByKey1795298831442, AlertPctUpToOneBillion1796101696967, EvaluationBacklog1796101712392, Reservations1796101800000];
