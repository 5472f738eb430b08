import { Column, Entity, PrimaryColumn, type ValueTransformer } from 'typeorm';

const epochMs: ValueTransformer = {
  to: (value?: number | null) => value,
  from: (value?: string | number | null) =>
    value === null || value === undefined ? null : Number(value),
};

/**
 * An API key managed by `npm run keys`: only its SHA-256 is stored. A revoked key keeps its row
 * (revoked_at set), so the service never falls back to open mode by revoking the last key.
 */
@Entity('api_keys')
export class ApiKeyEntity {
  @PrimaryColumn({ type: 'varchar', length: 64 })
  name!: string;

  @Column({ name: 'key_hash', type: 'varchar', length: 64, unique: true })
  keyHash!: string;

  @Column({ type: 'varchar', length: 64 })
  tenant!: string;

  /** Comma-separated. */
  @Column({ type: 'varchar', length: 255 })
  scopes!: string;

  /** Glob patterns, as a JSON array (a pattern may hold a comma: `{a,b}`). */
  @Column({ type: 'text' })
  actions!: string;

  @Column({ name: 'created_at', type: 'bigint', transformer: epochMs })
  createdAt!: number;

  @Column({ name: 'revoked_at', type: 'bigint', nullable: true, transformer: epochMs })
  revokedAt!: number | null;
}
