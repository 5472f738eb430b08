import type { Database } from 'better-sqlite3';

/** Row states of queue_messages. A message lives in exactly one; acked messages are deleted. */
export const MessageState = {
  /** Deliverable now, in (priority DESC, seq) order. */
  Ready: 0,
  /** Leased to a consumer until lease_until. */
  Leased: 1,
  /** Waiting for available_at; promoted to Ready by the next claim after it passes. */
  Delayed: 2,
} as const;

export const SCHEMA_VERSION = 1;

/**
 * Every table is prefixed `queue_` so the file can be shared with TypeORM's `tasks` and
 * `migrations` tables. Each index is partial on one state, so a claim touches only ready rows
 * (cost independent of the delayed or in-flight backlog) and every index stays small.
 */
const DDL = [
  `CREATE TABLE IF NOT EXISTS queue_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID`,
  `CREATE TABLE IF NOT EXISTS queue_messages (
     seq INTEGER PRIMARY KEY,
     id TEXT NOT NULL,
     queue TEXT NOT NULL,
     body TEXT NOT NULL,
     headers TEXT NOT NULL,
     priority INTEGER NOT NULL,
     attempt INTEGER NOT NULL,
     delivery_count INTEGER NOT NULL DEFAULT 0,
     stalls INTEGER NOT NULL DEFAULT 0,
     dedup_key TEXT,
     state INTEGER NOT NULL,
     available_at INTEGER NOT NULL,
     lease_token TEXT,
     lease_owner TEXT,
     lease_until INTEGER,
     created_at INTEGER NOT NULL
   )`,
  `CREATE INDEX IF NOT EXISTS queue_messages_ready
     ON queue_messages (queue, priority DESC, seq) WHERE state = ${MessageState.Ready}`,
  `CREATE INDEX IF NOT EXISTS queue_messages_delayed
     ON queue_messages (queue, available_at) WHERE state = ${MessageState.Delayed}`,
  `CREATE INDEX IF NOT EXISTS queue_messages_leased
     ON queue_messages (lease_until) WHERE state = ${MessageState.Leased}`,
  `CREATE UNIQUE INDEX IF NOT EXISTS queue_messages_dedup
     ON queue_messages (queue, dedup_key) WHERE dedup_key IS NOT NULL`,
  `CREATE TABLE IF NOT EXISTS queue_dead (
     seq INTEGER PRIMARY KEY,
     id TEXT NOT NULL,
     queue TEXT NOT NULL,
     body TEXT NOT NULL,
     headers TEXT NOT NULL,
     attempt INTEGER NOT NULL,
     reason TEXT NOT NULL,
     dead_at INTEGER NOT NULL
   )`,
  `CREATE INDEX IF NOT EXISTS queue_dead_queue ON queue_dead (queue, seq)`,
  `CREATE TABLE IF NOT EXISTS queue_paused (queue TEXT PRIMARY KEY, paused_at INTEGER NOT NULL) WITHOUT ROWID`,
  `CREATE TABLE IF NOT EXISTS queue_workers (
     id TEXT PRIMARY KEY,
     pid INTEGER NOT NULL,
     host TEXT NOT NULL,
     started_at INTEGER NOT NULL,
     heartbeat_at INTEGER NOT NULL,
     expires_at INTEGER NOT NULL
   ) WITHOUT ROWID`,
];

/** Creates the tables if missing; refuses a file written by a newer schema. Idempotent. */
export function applySchema(db: Database): void {
  db.transaction(() => {
    for (const statement of DDL) db.exec(statement);
    const row = db.prepare(`SELECT value FROM queue_meta WHERE key = 'schema_version'`).get() as
      { value: string } | undefined;
    if (row === undefined) {
      db.prepare(`INSERT INTO queue_meta (key, value) VALUES ('schema_version', ?)`).run(
        String(SCHEMA_VERSION),
      );
    } else if (Number(row.value) > SCHEMA_VERSION) {
      throw new Error(
        `queue schema version ${row.value} in ${db.name} is newer than this build (${SCHEMA_VERSION})`,
      );
    }
  }).immediate();
}
