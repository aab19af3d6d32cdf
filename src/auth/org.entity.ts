import { Column, CreateDateColumn, Entity, PrimaryColumn } from 'typeorm';

/** A tenant. */
@Entity({ name: 'orgs' })
export class Org {
  @PrimaryColumn({ type: 'varchar', length: 40 })
  id: string;

  @Column({ type: 'varchar', length: 200 })
  name: string;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;
}
