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

/** The dead-letter store's row in queue_counts (queue_dead has no state column). */
export const DEAD_COUNT_STATE = 9;

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
  // Messages per queue and state (and dead letters), kept by triggers in the same transaction
  // as every write, whoever makes it: stats read a few rows instead of counting an index, so a
  // metrics scrape costs the same with a million messages waiting as with ten.
  `CREATE TABLE IF NOT EXISTS queue_counts (
     queue TEXT NOT NULL,
     state INTEGER NOT NULL,
     n INTEGER NOT NULL,
     PRIMARY KEY (queue, state)
   ) WITHOUT ROWID`,
  `CREATE TRIGGER IF NOT EXISTS queue_messages_counted_in AFTER INSERT ON queue_messages BEGIN
     INSERT INTO queue_counts (queue, state, n) VALUES (NEW.queue, NEW.state, 1)
       ON CONFLICT (queue, state) DO UPDATE SET n = n + 1;
   END`,
  `CREATE TRIGGER IF NOT EXISTS queue_messages_counted_out AFTER DELETE ON queue_messages BEGIN
     UPDATE queue_counts SET n = n - 1 WHERE queue = OLD.queue AND state = OLD.state;
   END`,
  `CREATE TRIGGER IF NOT EXISTS queue_messages_counted_move AFTER UPDATE OF state ON queue_messages
   WHEN OLD.state <> NEW.state BEGIN
     UPDATE queue_counts SET n = n - 1 WHERE queue = OLD.queue AND state = OLD.state;
     INSERT INTO queue_counts (queue, state, n) VALUES (NEW.queue, NEW.state, 1)
       ON CONFLICT (queue, state) DO UPDATE SET n = n + 1;
   END`,
  `CREATE TRIGGER IF NOT EXISTS queue_dead_counted_in AFTER INSERT ON queue_dead BEGIN
     INSERT INTO queue_counts (queue, state, n) VALUES (NEW.queue, ${DEAD_COUNT_STATE}, 1)
       ON CONFLICT (queue, state) DO UPDATE SET n = n + 1;
   END`,
  `CREATE TRIGGER IF NOT EXISTS queue_dead_counted_out AFTER DELETE ON queue_dead BEGIN
     UPDATE queue_counts SET n = n - 1 WHERE queue = OLD.queue AND state = ${DEAD_COUNT_STATE};
   END`,
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
    const counted =
      db
        .prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'queue_counts'`)
        .get() !== undefined;
    for (const statement of DDL) db.exec(statement);
    // A file from before queue_counts: count what it holds once, in this same transaction (the
    // triggers keep the counts from here on, also for older builds writing to the file).
    if (!counted) {
      db.exec(`INSERT INTO queue_counts (queue, state, n)
                 SELECT queue, state, count(*) FROM queue_messages GROUP BY queue, state`);
      db.exec(`INSERT INTO queue_counts (queue, state, n)
                 SELECT queue, ${DEAD_COUNT_STATE}, count(*) FROM queue_dead GROUP BY queue`);
    }
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
