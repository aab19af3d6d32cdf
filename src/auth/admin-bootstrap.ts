import { DataSource } from 'typeorm';
import { STARTUP_LOCK_ID } from '../database/data-source';
import { newId } from '../common/ids';
import { ApiKey } from './api-key.entity';
import { Role, SYSTEM_ORG_ID } from './role';
import { hashApiKeySecret, newApiKeySecret } from './secrets';

export type BootstrapOutcome =
  | { kind: 'configured-created' | 'configured-exists' | 'configured-revoked' | 'admins-exist' }
  | { kind: 'generated'; secret: string };

/**
 * SPEC §1 `ADMIN_API_KEY`: when set, a cluster-admin key with exactly that secret exists afterwards
 * (idempotent). When unset and no cluster-admin key exists yet, one is generated; the caller prints
 * it once. Runs under the start-up advisory lock so concurrent starts cannot both generate one.
 */
export async function bootstrapAdminKey(dataSource: DataSource, adminApiKey: string | undefined): Promise<BootstrapOutcome> {
  return dataSource.transaction(async (manager) => {
    await manager.query('SELECT pg_advisory_xact_lock($1)', [STARTUP_LOCK_ID + 1]);
    const keys = manager.getRepository(ApiKey);
    const create = (secret: string, name: string) =>
      keys.insert({
        id: newId('key'),
        orgId: SYSTEM_ORG_ID,
        name,
        role: Role.ClusterAdmin,
        teamId: null,
        secretHash: hashApiKeySecret(secret),
        secretPrefix: secret.slice(0, 7),
        createdBy: null,
        createdOnBehalfOf: null,
        revokedAt: null,
      });

    if (adminApiKey !== undefined) {
      const existing = await keys.findOneBy({ secretHash: hashApiKeySecret(adminApiKey) });
      if (!existing) {
        await create(adminApiKey, 'admin (ADMIN_API_KEY)');
        return { kind: 'configured-created' };
      }
      if (existing.revokedAt) return { kind: 'configured-revoked' };
      return { kind: 'configured-exists' };
    }
    if (await keys.existsBy({ role: Role.ClusterAdmin })) return { kind: 'admins-exist' };
    const secret = newApiKeySecret();
    await create(secret, 'admin (generated)');
    return { kind: 'generated', secret };
  });
}

/** The one place a generated admin secret is shown: straight to the console, never to the log. */
export function printGeneratedAdminKey(secret: string): void {
  process.stdout.write(
    [
      '',
      '================================================================',
      ' Tally generated a cluster-admin API key (shown once, not logged):',
      `   ${secret}`,
      ' Store it now, or set ADMIN_API_KEY to choose your own.',
      '================================================================',
      '',
    ].join('\n') + '\n',
  );
}
