import { basename, dirname, extname, join } from 'node:path';

export type SqliteSynchronous = 'NORMAL' | 'FULL';

/** Options of {@link SqliteQueueDriver}; only `path` is required. */
export interface SqliteDriverOptions {
  /** The database file (shard 0). Other shards sit beside it as `<name>-shard-<i><ext>`. */
  path: string;
  /**
   * NORMAL (default) survives a process crash; FULL also survives a power cut or OS crash, at
   * the price of an fsync per commit (group commit keeps that to one per batch).
   */
  synchronous?: SqliteSynchronous;
  /** How long a delivery stays ours without extendLease. Default 30000. */
  leaseMs?: number;
  /** How often this process proves it is alive. A process silent for 5 beats loses its leases. Default 1000. */
  heartbeatMs?: number;
  /** A message whose lease is lost this many times is dead-lettered instead of redelivered. Default 3. */
  maxStalls?: number;
  /** Database files to spread the write load over (1..64). Default 1. */
  shards?: number;
  /** Idle consumers poll for other processes' messages, backing off from pollMinMs to pollMaxMs. */
  pollMinMs?: number;
  pollMaxMs?: number;
  /** How long SQLite itself waits for another connection's write lock before taskq retries asynchronously. Default 50. */
  busyTimeoutMs?: number;
}

export type ResolvedSqliteDriverOptions = Required<SqliteDriverOptions>;

export const SQLITE_DRIVER_DEFAULTS: Omit<ResolvedSqliteDriverOptions, 'path'> = {
  synchronous: 'NORMAL',
  leaseMs: 30_000,
  heartbeatMs: 1_000,
  maxStalls: 3,
  shards: 1,
  pollMinMs: 1,
  pollMaxMs: 50,
  busyTimeoutMs: 50,
};

const BOUNDS: Record<keyof Omit<ResolvedSqliteDriverOptions, 'path' | 'synchronous'>, number[]> = {
  leaseMs: [10, 86_400_000],
  heartbeatMs: [10, 600_000],
  maxStalls: [1, 1000],
  shards: [1, 64],
  pollMinMs: [0, 60_000],
  pollMaxMs: [1, 60_000],
  busyTimeoutMs: [0, 60_000],
};

/**
 * Fills defaults and validates, so a bad value fails at boot with the option's name.
 * Accepts the untyped `options` record of a driver definition.
 */
export function resolveSqliteDriverOptions(
  input: Partial<SqliteDriverOptions> | Record<string, unknown> = {},
): ResolvedSqliteDriverOptions {
  const raw = input as Partial<SqliteDriverOptions>;
  if (typeof raw.path !== 'string' || raw.path === '') {
    throw new Error('sqlite queue driver: option path must be a non-empty string');
  }
  const resolved: ResolvedSqliteDriverOptions = { ...SQLITE_DRIVER_DEFAULTS, path: raw.path };
  for (const key of Object.keys(BOUNDS) as (keyof typeof BOUNDS)[]) {
    const value = raw[key];
    if (value === undefined) continue;
    const [min, max] = BOUNDS[key];
    if (!Number.isInteger(value) || value < min || value > max) {
      throw new Error(
        `sqlite queue driver: option ${key} must be an integer from ${min} to ${max}, got ${String(value)}`,
      );
    }
    resolved[key] = value;
  }
  if (raw.synchronous !== undefined) {
    if (raw.synchronous !== 'NORMAL' && raw.synchronous !== 'FULL') {
      throw new Error(
        `sqlite queue driver: option synchronous must be NORMAL or FULL, got ${String(raw.synchronous)}`,
      );
    }
    resolved.synchronous = raw.synchronous;
  }
  if (resolved.pollMaxMs < resolved.pollMinMs) {
    throw new Error('sqlite queue driver: pollMaxMs must not be below pollMinMs');
  }
  if (resolved.path === ':memory:' && resolved.shards > 1) {
    throw new Error('sqlite queue driver: an in-memory database cannot be sharded');
  }
  return resolved;
}

/** The file of each shard: shard 0 is `path` itself, so one shard shares the task table's file. */
export function shardPaths(path: string, shards: number): string[] {
  const ext = extname(path);
  const stem = join(dirname(path), basename(path, ext));
  return Array.from({ length: shards }, (_, i) => (i === 0 ? path : `${stem}-shard-${i}${ext}`));
}
