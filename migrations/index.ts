// Every migration, in order. `npm run migration:generate -- Name` adds new ones here.
import { Foundation1795296150373 } from './1795296150373-Foundation';

export const MIGRATIONS: Function[] = [Foundation1795296150373];
