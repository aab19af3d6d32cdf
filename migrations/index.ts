// Every migration, in order. `npm run migration:generate -- Name` adds new ones here.
import { Foundation1795296150373 } from './1795296150373-Foundation';
import { Usage1795296445061 } from './1795296445061-Usage';

export const MIGRATIONS: Function[] = [Foundation1795296150373, Usage1795296445061];
