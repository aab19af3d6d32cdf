// Every migration, in order. `npm run migration:generate -- Name` adds new ones here.
import { Foundation1795296150373 } from './1795296150373-Foundation';
import { Usage1795296445061 } from './1795296445061-Usage';
import { Budgets1795297154288 } from './1795297154288-Budgets';
import { Alerts1795297480078 } from './1795297480078-Alerts';
import { UsageRollupsByKey1795298831442 } from './1795298831442-UsageRollupsByKey';
import { UsageDeltaJournal1795300000000 } from './1795300000000-UsageDeltaJournal';
import { PartitionRecordsByMonth1795300100000 } from './1795300100000-PartitionRecordsByMonth';
import { AlertPctUpToOneBillion1796101696967 } from './1796101696967-AlertPctUpToOneBillion';
import { EvaluationBacklog1796101712392 } from './1796101712392-EvaluationBacklog';
import { OrgInTrafficKeys1796102676237 } from './1796102676237-OrgInTrafficKeys';
import { BudgetTimezoneAndSecretRotation1796104802464 } from './1796104802464-BudgetTimezoneAndSecretRotation';
import { TeamAndUserBudgets1796105254662 } from './1796105254662-TeamAndUserBudgets';
import { ResolvedEvents1796105904974 } from './1796105904974-ResolvedEvents';
import { Reservations1796106000000 } from './1796106000000-Reservations';
import { DeletedBudgetResolutions1796107817404 } from './1796107817404-DeletedBudgetResolutions';
import { ReservationFences1796108000000 } from './1796108000000-ReservationFences';
import { EnsurePartitionsWaitsForCreator1796109000000 } from './1796109000000-EnsurePartitionsWaitsForCreator';
import { BudgetCounterEpoch1796110000000 } from './1796110000000-BudgetCounterEpoch';
import { AlertKeyHasWindowEnd1796111000000 } from './1796111000000-AlertKeyHasWindowEnd';
import { RollupHeldGroups1796112000000 } from './1796112000000-RollupHeldGroups';
import { EvaluationRequestTeamsUsers1796332763155 } from './1796332763155-EvaluationRequestTeamsUsers';

export const MIGRATIONS: Function[] = [Foundation1795296150373, Usage1795296445061, Budgets1795297154288, Alerts1795297480078, UsageRollupsByKey1795298831442, UsageDeltaJournal1795300000000, PartitionRecordsByMonth1795300100000, AlertPctUpToOneBillion1796101696967, EvaluationBacklog1796101712392, OrgInTrafficKeys1796102676237, BudgetTimezoneAndSecretRotation1796104802464, TeamAndUserBudgets1796105254662, ResolvedEvents1796105904974, Reservations1796106000000, DeletedBudgetResolutions1796107817404, ReservationFences1796108000000, EnsurePartitionsWaitsForCreator1796109000000, BudgetCounterEpoch1796110000000, AlertKeyHasWindowEnd1796111000000, RollupHeldGroups1796112000000, EvaluationRequestTeamsUsers1796332763155];
