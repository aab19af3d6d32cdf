import { Check, Column, CreateDateColumn, Entity, Index, JoinColumn, ManyToOne, PrimaryColumn } from 'typeorm';
import { Org } from './org.entity';
import { Role } from './role';

/** An API key: public id, role, and the SHA-256 of its secret (the secret itself is never stored). */
@Entity({ name: 'api_keys' })
@Check('api_keys_role_check', `"role" IN ('cluster_admin', 'org_admin', 'member', 'ingest')`)
@Index('api_keys_org_idx', ['orgId', 'createdAt'])
export class ApiKey {
  @PrimaryColumn({ type: 'varchar', length: 40 })
  id: string;

  @Column({ name: 'org_id', type: 'varchar', length: 40 })
  orgId: string;

  @ManyToOne(() => Org, { onDelete: 'RESTRICT' })
  @JoinColumn({ name: 'org_id' })
  org?: Org;

  @Column({ type: 'varchar', length: 200 })
  name: string;

  @Column({ type: 'varchar', length: 20 })
  role: Role;

  @Column({ name: 'team_id', type: 'varchar', length: 128, nullable: true })
  teamId: string | null;

  @Index('api_keys_secret_hash_key', { unique: true })
  @Column({ name: 'secret_hash', type: 'bytea' })
  secretHash: Buffer;

  /** First characters of the secret (`mk-AbCd`), to help people tell keys apart. */
  @Column({ name: 'secret_prefix', type: 'varchar', length: 16 })
  secretPrefix: string;

  @Column({ name: 'created_by', type: 'varchar', length: 40, nullable: true })
  createdBy: string | null;

  @Column({ name: 'created_on_behalf_of', type: 'varchar', length: 150, nullable: true })
  createdOnBehalfOf: string | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;

  @Column({ name: 'revoked_at', type: 'timestamptz', nullable: true })
  revokedAt: Date | null;
}
