import { RESERVATION_LOCK_CLASS } from '../reservations/admission-sql';
import { ROLLUP_LOCK_CLASS } from '../usage/usage-ingest.service';
import { MAINTENANCE_LOCK_CLASS, MAINTENANCE_LOCK_KEY } from '../usage/partitions';
import { FOLD_LOCK_CLASS, FOLD_LOCK_KEY } from '../usage/rollup-journal';

/**
 * PostgreSQL advisory locks of two int keys share one space per database. A class whose second
 * key is a hash of an org id (any 32-bit value) must be the only user of that class, or an org
 * whose hash hits another lock's key would block it (a fold, a partition maintenance).
 */
describe('advisory lock classes', () => {
  it('the classes keyed by an org hash are used by nothing else', () => {
    const fixedKeys = [
      [FOLD_LOCK_CLASS, FOLD_LOCK_KEY],
      [MAINTENANCE_LOCK_CLASS, MAINTENANCE_LOCK_KEY],
    ];
    const hashed = [RESERVATION_LOCK_CLASS, ROLLUP_LOCK_CLASS];
    expect(new Set(hashed).size).toBe(hashed.length);
    for (const [cls] of fixedKeys) expect(hashed).not.toContain(cls);
    expect(new Set(fixedKeys.map((k) => k.join(':'))).size).toBe(fixedKeys.length);
  });
});
