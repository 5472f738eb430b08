import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import type { Delivery } from '../../interfaces/queue-message.interface';
import type { SharedWrite } from '../../interfaces/shared-write.interface';
import { decodeReceipt } from './receipt';
import { SqliteQueueDriver } from './sqlite.driver';
import {
  resolveSqliteDriverOptions,
  shardPaths,
  type SqliteDriverOptions,
} from './sqlite-driver.options';
import { SqliteShard } from './sqlite-shard';

const WAIT_MS = 15_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until<T>(probe: () => T | Promise<T>, what: string): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${WAIT_MS} ms waiting for ${what}`);
    await sleep(5);
  }
}

describe(SqliteQueueDriver.name, () => {
  let dir: string;
  let path: string;
  let queue: string;
  const drivers: SqliteQueueDriver[] = [];

  const open = (options: Partial<SqliteDriverOptions> = {}) => {
    const driver = new SqliteQueueDriver({ path, ...options });
    drivers.push(driver);
    return driver;
  };

  /** Starts a consumer that holds every delivery; answers what it received so far. */
  const hold = (driver: SqliteQueueDriver, prefetch = 10) => {
    const received: Delivery[] = [];
    const handle = driver.consume(queue, (d) => received.push(d), { prefetch });
    return { received, handle };
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'taskq-sqlite-driver-'));
    path = join(dir, 'tasks.db');
    queue = `test-${randomUUID()}`;
  });

  afterEach(async () => {
    jest.restoreAllMocks();
    await Promise.all(drivers.splice(0).map((d) => d.close()));
    rmSync(dir, { recursive: true, force: true });
  });

  describe('schema', () => {
    it('adds only queue_ tables beside an existing task table and leaves it alone', async () => {
      const db = new BetterSqlite3(path);
      db.exec(`CREATE TABLE tasks (id TEXT PRIMARY KEY); INSERT INTO tasks VALUES ('t1')`);
      db.close();

      const driver = open();
      await driver.ping();
      await open().ping(); // a second opener finds the schema in place

      const inspect = new BetterSqlite3(path, { readonly: true });
      const tables = inspect
        .prepare(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
        .pluck()
        .all();
      const version = inspect
        .prepare(`SELECT value FROM queue_meta WHERE key = 'schema_version'`)
        .pluck()
        .get();
      const tasks = inspect.prepare(`SELECT id FROM tasks`).pluck().all();
      const journal = inspect.pragma('journal_mode', { simple: true });
      inspect.close();
      expect(tables).toEqual([
        'queue_counts',
        'queue_dead',
        'queue_messages',
        'queue_meta',
        'queue_paused',
        'queue_workers',
        'tasks',
      ]);
      expect(version).toBe('1');
      expect(tasks).toEqual(['t1']);
      expect(journal).toBe('wal');
    });

    it('applies synchronous and busy_timeout to its connection', async () => {
      const full = new SqliteShard(0, join(dir, 'full.db'), 'FULL', 75);
      const normal = new SqliteShard(0, join(dir, 'normal.db'), 'NORMAL', 50);
      try {
        expect(full.db.pragma('synchronous', { simple: true })).toBe(2);
        expect(full.db.pragma('busy_timeout', { simple: true })).toBe(75);
        expect(normal.db.pragma('synchronous', { simple: true })).toBe(1);
      } finally {
        await full.close();
        await normal.close();
      }
    });

    it('counts a file written before queue_counts once, then keeps counting', async () => {
      // Arrange: messages in every state, then the file as an older build left it.
      const first = open();
      await first.publish(queue, [
        { body: 1 },
        { body: 2 },
        { body: 3 },
        { body: 4, delayMs: 60_000 },
      ]);
      const { received } = hold(first, 2);
      await until(() => received.length === 2, 'two deliveries');
      await first.deadLetter(received[0], 'broken');
      expect(await first.stats(queue)).toMatchObject({
        ready: 1,
        inFlight: 1,
        delayed: 1,
        dead: 1,
      });
      await first.close();
      const db = new BetterSqlite3(path);
      db.exec(`DROP TABLE queue_counts`);
      db.close();

      // Act: a new opener finds no queue_counts.
      const second = open();
      const stats = await second.stats(queue);

      // Assert: counted from the rows (the lease of the closed driver is handed back as ready).
      expect(stats.ready + stats.inFlight).toBe(2);
      expect(stats).toMatchObject({ delayed: 1, dead: 1 });
      await second.publish(queue, [{ body: 5 }]);
      expect((await second.stats(queue)).ready + (await second.stats(queue)).inFlight).toBe(3);
    });

    it('claims, promotes and reaps through partial indexes, never a table scan', async () => {
      const shard = new SqliteShard(0, path, 'NORMAL', 50);
      try {
        shard.open();
        const plan = (name: Parameters<SqliteShard['sqlOf']>[0]) => {
          const sql = shard.sqlOf(name);
          const params = sql.match(/@\w+|\?/g) ?? [];
          const named = Object.fromEntries(
            params.filter((p) => p.startsWith('@')).map((p) => [p.slice(1), 1]),
          );
          const statement = shard.db.prepare(`EXPLAIN QUERY PLAN ${sql}`);
          const rows = (
            Object.keys(named).length > 0
              ? statement.all(named)
              : statement.all(...params.map(() => 1))
          ) as { detail: string }[];
          return rows.map((r) => r.detail).join('\n');
        };
        expect(plan('claim')).toMatch(/USING COVERING INDEX queue_messages_ready \(queue=\?\)/);
        expect(plan('promote')).toMatch(
          // (COVERING since queue_counts' trigger: the rows to move are found first, then updated.)
          /USING (COVERING )?INDEX queue_messages_delayed \(queue=\? AND available_at<\?\)/,
        );
        expect(plan('hasWork')).toMatch(/queue_messages_ready/);
        expect(plan('anyExpired')).toMatch(
          /USING .*INDEX queue_messages_leased \(lease_until<\?\)/,
        );
        expect(plan('counts')).toMatch(/SEARCH queue_counts USING PRIMARY KEY \(queue=\?\)/);
        expect(plan('countDue')).toMatch(
          /INDEX queue_messages_delayed \(queue=\? AND available_at<\?\)/,
        );
        expect(plan('deadLetters')).toMatch(/queue_dead_queue/);
        for (const name of [
          'claim',
          'promote',
          'hasWork',
          'ack',
          'nack',
          'release',
          'extend',
        ] as const) {
          expect(plan(name)).not.toMatch(/SCAN queue_messages(?! USING)/);
        }
      } finally {
        await shard.close();
      }
    });

    it('checkpoints the log from its own thread, not on commit', async () => {
      const shard = new SqliteShard(0, path, 'NORMAL', 50);
      try {
        shard.open();
        expect(shard.db.pragma('wal_autocheckpoint', { simple: true })).toBe(20_000);
        shard.db.exec(`CREATE TABLE filler (x BLOB)`);
        const insert = shard.db.prepare(`INSERT INTO filler VALUES (randomblob(4000))`);
        // About 500 pages, below the backstop: only the thread can have folded them back.
        shard.write(() => {
          for (let i = 0; i < 500; i++) insert.run();
        });
        // Pages reach the database file only through a checkpoint.
        await until(() => statSync(path).size > 500 * 4000, 'the checkpointer thread');
      } finally {
        await shard.close();
      }
    });
  });

  it('keeps messages, delays, dead letters and pauses across closing and reopening the file', async () => {
    const first = open();
    const [urgent, plain, later] = await first.publish(queue, [
      { body: { n: 1 }, priority: 9, headers: { h: 'x' } },
      { body: { n: 2 }, attempt: 2 },
      { body: { n: 3 }, delayMs: 60_000 },
    ]);
    await first.publish(queue, [{ body: { n: 4 } }]);
    const { received, handle } = hold(first, 2);
    await until(() => received.length === 2, 'two deliveries');
    await handle.cancel(); // so the freed slot claims nothing more before close
    await first.deadLetter(received[1], 'kept for inspection');
    await first.pauseQueue(`${queue}-paused`);
    await first.close();

    const second = open();
    expect(await second.stats(queue)).toMatchObject({ ready: 2, delayed: 1, inFlight: 0, dead: 1 });
    expect(await second.stats(`${queue}-paused`)).toMatchObject({ paused: true });
    expect(await second.deadLetters(queue)).toEqual([
      expect.objectContaining({ id: plain, reason: 'kept for inspection', attempt: 2 }),
    ]);
    const again = hold(second, 5);
    await until(() => again.received.length === 2, 'redelivery after reopening');
    // The message in flight at close went back untouched (same attempt), counted as a new delivery.
    expect(again.received[0]).toMatchObject({
      id: urgent,
      body: { n: 1 },
      headers: { h: 'x' },
      priority: 9,
      attempt: 1,
      deliveryCount: 2,
    });
    expect(again.received[1]).toMatchObject({ body: { n: 4 }, deliveryCount: 1 });
    expect(again.received.map((d) => d.id)).not.toContain(later);
  });

  it('lets a second instance on the same file take over the leases of a process that died', async () => {
    const [id] = await open().publish(queue, [{ body: 'survivor' }]);
    // A real crash: a child process claims the message and is killed without any cleanup.
    const child = spawn(process.execPath, ['-e', CHILD_CLAIMS_AND_WAITS], {
      cwd: join(__dirname, '..', '..', '..', '..'),
      env: { ...process.env, QUEUE_DB: path, QUEUE_NAME: queue },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise((resolve) => child.on('exit', resolve));
    try {
      await until(() => output.includes(`HELD ${id}`), 'the child to hold the message');
    } finally {
      child.kill('SIGKILL');
      await exited;
    }

    // The child's lease lasts a minute; only its missed heartbeats can free the message sooner.
    const survivor = open({ heartbeatMs: 100, leaseMs: 60_000 });
    const { received } = hold(survivor);
    const startedAt = Date.now();
    await until(() => received.length === 1, 'the takeover');
    expect(Date.now() - startedAt).toBeLessThan(60_000);
    expect(received[0]).toMatchObject({ id, attempt: 1, deliveryCount: 2 });
    await survivor.ack(received[0]);
    const inspect = new BetterSqlite3(path, { readonly: true });
    const workers = inspect.prepare(`SELECT count(*) FROM queue_workers`).pluck().get();
    inspect.close();
    expect(workers).toBe(2); // the dead child's row is gone; the two live drivers remain
  }, 30_000);

  it('shares pauses and messages between instances on one file', async () => {
    const publisher = open();
    const consumer = open({ pollMaxMs: 20 });
    await publisher.pauseQueue(queue);
    const { received } = hold(consumer);
    await publisher.publish(queue, [{ body: 1 }]);
    await sleep(300);
    expect(received).toHaveLength(0);
    await publisher.resumeQueue(queue);
    await until(() => received.length === 1, 'delivery in the other instance');
    expect(received[0].body).toBe(1);
  });

  it('dead-letters a message after maxStalls lost leases instead of redelivering it', async () => {
    const driver = open({ leaseMs: 150, heartbeatMs: 50, maxStalls: 2 });
    const [id] = await driver.publish(queue, [{ body: 'poison' }]);
    const { received } = hold(driver);
    await until(async () => (await driver.stats(queue)).dead === 1, 'the dead letter');
    expect(received.map((d) => [d.id, d.deliveryCount])).toEqual([
      [id, 1],
      [id, 2],
    ]);
    expect(await driver.deadLetters(queue)).toEqual([
      expect.objectContaining({ id, reason: 'lease lost 2 times', attempt: 1 }),
    ]);
    expect(await driver.stats(queue)).toMatchObject({ ready: 0, inFlight: 0 });
  });

  it('keeps a message it cannot decode as a dead letter with the reason, and goes on', async () => {
    const errors: string[] = [];
    const driver = new SqliteQueueDriver({ path }, { error: (message) => errors.push(message) });
    drivers.push(driver);
    const [bad, good] = await driver.publish(queue, [{ body: 'bad' }, { body: 'good' }]);
    // Another writer corrupts one row of the shared file.
    const db = new BetterSqlite3(path);
    db.prepare(`UPDATE queue_messages SET body = 'not json' WHERE id = ?`).run(bad);
    db.close();

    const { received } = hold(driver);
    await until(async () => (await driver.stats(queue)).dead === 1, 'the dead letter');
    expect(received.map((d) => [d.id, d.body])).toEqual([[good, 'good']]);
    expect(await driver.deadLetters(queue)).toEqual([
      expect.objectContaining({
        id: bad,
        body: 'not json',
        reason: expect.stringMatching(/^undecodable message: .*JSON/),
      }),
    ]);
    expect(errors).toEqual([expect.stringContaining(`message ${bad} of ${queue}`)]);
  });

  it('spreads messages over shard files and drains every shard in turn', async () => {
    const driver = open({ shards: 4 });
    const ids = await driver.publish(
      queue,
      Array.from({ length: 200 }, (_, i) => ({ body: i })),
    );
    const [dedupA] = await driver.publish(queue, [{ body: 'a', deduplicationKey: 'same' }]);
    const [dedupB] = await driver.publish(queue, [{ body: 'b', deduplicationKey: 'same' }]);
    expect(dedupB).toBe(dedupA);

    const files = shardPaths(path, 4);
    expect(files[0]).toBe(path);
    const perShard = files.map((file) => {
      expect(existsSync(file)).toBe(true);
      const db = new BetterSqlite3(file, { readonly: true });
      const count = db.prepare(`SELECT count(*) FROM queue_messages`).pluck().get() as number;
      db.close();
      return count;
    });
    expect(perShard.reduce((a, b) => a + b, 0)).toBe(201);
    for (const count of perShard) expect(count).toBeGreaterThan(16);

    const { received } = hold(driver, 16);
    const firstShards: number[] = [];
    for (let round = 1; round <= 4; round++) {
      await until(() => received.length === round * 16, `claim round ${round}`);
      const batch = received.slice((round - 1) * 16, round * 16);
      const shards = new Set(batch.map((d) => decodeReceipt(d.receipt)!.shard));
      expect(shards.size).toBe(1); // one claim, one shard
      firstShards.push(...shards);
      await Promise.all(batch.map((d) => driver.ack(d)));
    }
    expect(new Set(firstShards).size).toBe(4);

    for (let acked = 64; acked < 201;) {
      await until(() => received.length > acked, 'more deliveries');
      const batch = received.slice(acked);
      acked += batch.length;
      await Promise.all(batch.map((d) => driver.ack(d)));
    }
    expect(received).toHaveLength(201);
    expect(new Set(received.map((d) => d.id))).toEqual(new Set([...ids, dedupA]));
    expect(await driver.stats(queue)).toMatchObject({ ready: 0, inFlight: 0, delayed: 0 });
  });

  describe('batching', () => {
    it('claims up to the free prefetch slots in one transaction', async () => {
      const driver = open({ heartbeatMs: 600_000 });
      await driver.publish(
        queue,
        Array.from({ length: 100 }, (_, i) => ({ body: i })),
      );
      const writes = jest.spyOn(SqliteShard.prototype, 'write');
      const { received } = hold(driver, 64);
      await until(() => received.length === 64, '64 deliveries');
      await sleep(100);
      expect(received).toHaveLength(64);
      expect(writes).toHaveBeenCalledTimes(1);
    });

    it('refills at the low-water mark in one claim, not one claim per settle', async () => {
      const driver = open({ heartbeatMs: 600_000 });
      await driver.publish(
        queue,
        Array.from({ length: 30 }, (_, i) => ({ body: i })),
      );
      const received: Delivery[] = [];
      driver.consume(queue, (d) => received.push(d), { prefetch: 10, lowWater: 6 });
      await until(() => received.length === 10, '10 deliveries');
      const writes = jest.spyOn(SqliteShard.prototype, 'write');
      // Holding 7 (> 6): nothing new.
      for (const d of received.slice(0, 3)) await driver.ack(d);
      await sleep(50);
      expect(received).toHaveLength(10);
      // Down to 6: the four free slots come in one claim.
      await driver.ack(received[3]);
      await until(() => received.length === 14, '4 more deliveries');
      await sleep(50);
      expect(received).toHaveLength(14);
      const claims = writes.mock.calls.length - 4; // the four acks each committed alone
      expect(claims).toBe(1);
    });

    it('commits the settles and publishes of one turn together', async () => {
      const driver = open({ heartbeatMs: 600_000 });
      await driver.publish(
        queue,
        Array.from({ length: 50 }, (_, i) => ({ body: i })),
      );
      const { received } = hold(driver, 50);
      await until(() => received.length === 50, '50 deliveries');
      const writes = jest.spyOn(SqliteShard.prototype, 'write');
      await Promise.all([
        ...received.map((d) => driver.ack(d)),
        ...Array.from({ length: 20 }, (_, i) => driver.publish(queue, [{ body: `p${i}` }])),
      ]);
      expect(writes).toHaveBeenCalledTimes(1);
      await until(() => received.length === 70, 'the 20 published messages');
      expect(await driver.stats(queue)).toMatchObject({ ready: 0, inFlight: 20 });
    });
  });

  describe('shared writer and settleWith', () => {
    const ackWith = (driver: SqliteQueueDriver, delivery: Delivery, write: SharedWrite) =>
      driver.settleWith(delivery, write, { kind: 'ack' });

    /** An outcome table on the driver's own connection, like taskq's task rows. */
    const outcomes = (driver: SqliteQueueDriver) => {
      const writer = driver.sharedWriter(path)!;
      writer.db.exec(`CREATE TABLE IF NOT EXISTS outcomes (id TEXT PRIMARY KEY, result TEXT)`);
      const insert = writer.db.prepare(`INSERT INTO outcomes (id, result) VALUES (?, ?)`);
      const read = (id: string) => {
        const reader = new BetterSqlite3(path, { readonly: true });
        try {
          return reader.prepare(`SELECT result FROM outcomes WHERE id = ?`).pluck().get(id);
        } finally {
          reader.close();
        }
      };
      return { writer, insert, read };
    };

    /** A driver holding one delivery, with the outcome table on its connection. */
    const oneDelivery = async () => {
      const driver = open({ heartbeatMs: 600_000 });
      await driver.ping();
      await driver.publish(queue, [{ body: 'a' }]);
      const { received } = hold(driver);
      await until(() => received.length === 1, 'a delivery');
      return { driver, ...outcomes(driver), received, delivery: received[0] };
    };

    it('is lent only for its own file', async () => {
      const driver = open();
      await driver.ping();
      expect(driver.sharedWriter(path)?.db).toBeDefined();
      expect(driver.sharedWriter(join(dir, '..', dir.split('/').pop()!, 'tasks.db'))).toBe(
        driver.sharedWriter(path),
      );
      expect(driver.sharedWriter(join(dir, 'other.db'))).toBeUndefined();
    });

    it('commits the effect and the ack in one transaction', async () => {
      const { driver, writer, insert, read, delivery } = await oneDelivery();
      const committed = jest.fn();
      let inTransaction = false;
      await ackWith(driver, delivery, {
        writer,
        run: () => {
          inTransaction = writer.db.inTransaction;
          return insert.run(delivery.id, 'done').changes === 1;
        },
        commit: () => Promise.reject(new Error('must not be called')),
        committed,
      });
      expect(inTransaction).toBe(true);
      expect(committed).toHaveBeenCalledWith(true);
      expect(read(delivery.id)).toBe('done');
      expect(await driver.stats(queue)).toMatchObject({ ready: 0, inFlight: 0 });
    });

    it('acks nothing when the effect throws, and the delivery can be settled again', async () => {
      const { driver, writer, insert, read, delivery } = await oneDelivery();
      const committed = jest.fn();
      const failing = {
        writer,
        run: (): boolean => {
          insert.run(delivery.id, 'half');
          throw new Error('effect failed');
        },
        commit: () => Promise.resolve(true),
        committed,
      };
      await expect(ackWith(driver, delivery, failing)).rejects.toThrow('effect failed');
      expect(committed).not.toHaveBeenCalled();
      expect(read(delivery.id)).toBeUndefined(); // the savepoint undid the effect's insert
      expect(await driver.stats(queue)).toMatchObject({ inFlight: 1 });

      // The same delivery can still be settled, effect and ack together.
      await ackWith(driver, delivery, {
        ...failing,
        run: () => insert.run(delivery.id, 'ok').changes === 1,
      });
      expect(committed).toHaveBeenCalledWith(true);
      expect(read(delivery.id)).toBe('ok');
    });

    it('commits the effect even when the ack is refused as stale', async () => {
      const { driver, writer, insert, read, received, delivery } = await oneDelivery();
      await driver.release(delivery); // the lease is gone: this receipt is stale now
      const committed = jest.fn();
      await expect(
        ackWith(driver, delivery, {
          writer,
          run: () => insert.run(delivery.id, 'late').changes === 1,
          commit: () => Promise.reject(new Error('must not be called')),
          committed,
        }),
      ).rejects.toThrow(/stale|no longer/i);
      // Fenced on its own terms, the effect's write stands; the message is not acked.
      expect(committed).toHaveBeenCalledWith(true);
      expect(read(delivery.id)).toBe('late');
      await until(() => received.length === 2, 'the released message again');
    });

    it('commits a failure with its nack, or with its dead-letter, in one transaction', async () => {
      const driver = open({ heartbeatMs: 600_000 });
      await driver.ping();
      const { writer, insert, read } = outcomes(driver);
      await driver.publish(queue, [{ body: 'retry' }, { body: 'dead' }]);
      const { received } = hold(driver);
      await until(() => received.length === 2, 'two deliveries');
      const [retry, dead] = received;
      const record = (d: Delivery, result: string): SharedWrite => ({
        writer,
        run: () => {
          expect(writer.db.inTransaction).toBe(true);
          return insert.run(d.id, result).changes === 1;
        },
        commit: () => Promise.reject(new Error('must not be called')),
        committed: () => undefined,
      });
      await driver.settleWith(retry, record(retry, 'failed once'), { kind: 'nack', delayMs: 0 });
      await driver.settleWith(dead, record(dead, 'failed for good'), {
        kind: 'dead',
        reason: 'attempts exhausted',
      });
      expect(read(retry.id)).toBe('failed once');
      expect(read(dead.id)).toBe('failed for good');
      await until(() => received.length === 3, 'the nacked message again');
      expect(received[2]).toMatchObject({ id: retry.id, attempt: 2 });
      expect((await driver.deadLetters(queue)).map((d) => d.reason)).toEqual([
        'attempts exhausted',
      ]);
    });

    it('publishes with a write in one transaction, or not at all when the write throws', async () => {
      const driver = open({ heartbeatMs: 600_000 });
      await driver.ping();
      const { writer, insert, read } = outcomes(driver);
      const rows = (id: string, fail = false): SharedWrite => ({
        writer,
        run: () => {
          insert.run(id, 'row');
          if (fail) throw new Error('unique violation');
          return true;
        },
        commit: () => Promise.reject(new Error('must not be called')),
        committed: () => undefined,
      });
      const writes = jest.spyOn(SqliteShard.prototype, 'write');
      const [id] = (await driver.publishWith(queue, [{ body: 'a' }], rows('r1')))!;
      expect(writes).toHaveBeenCalledTimes(1);
      expect(read('r1')).toBe('row');
      await expect(driver.publishWith(queue, [{ body: 'b' }], rows('r2', true))).rejects.toThrow(
        'unique violation',
      );
      expect(read('r2')).toBeUndefined();
      expect(await driver.stats(queue)).toMatchObject({ ready: 1 });
      const { received } = hold(driver);
      await until(() => received.length === 1, 'the one published message');
      expect(received[0]).toMatchObject({ id, body: 'a' });
      // A write through another connection is not joined: the caller publishes on its own.
      expect(
        await driver.publishWith(queue, [{ body: 'c' }], { ...rows('r3'), writer: undefined }),
      ).toBeUndefined();
      expect(read('r3')).toBeUndefined();
    });

    it('commits a foreign effect first, then acks', async () => {
      const driver = open({ heartbeatMs: 600_000 });
      await driver.publish(queue, [{ body: 'a' }]);
      const { received } = hold(driver);
      await until(() => received.length === 1, 'a delivery');
      const [delivery] = received;
      const order: string[] = [];
      await ackWith(driver, delivery, {
        run: () => {
          throw new Error('must not run inside the driver');
        },
        commit: () => {
          order.push('commit');
          return Promise.resolve(false);
        },
        committed: (applied: boolean) => order.push(`committed:${applied}`),
      });
      expect(order).toEqual(['commit', 'committed:false']);
      expect(await driver.stats(queue)).toMatchObject({ ready: 0, inFlight: 0 });
    });
  });

  it('rejects options out of bounds at construction', () => {
    expect(() => resolveSqliteDriverOptions({ path, shards: 65 })).toThrow(
      'option shards must be an integer from 1 to 64, got 65',
    );
    expect(() => resolveSqliteDriverOptions({ path, synchronous: 'OFF' })).toThrow(
      'option synchronous must be NORMAL or FULL',
    );
    expect(() => resolveSqliteDriverOptions({})).toThrow('option path must be a non-empty string');
    expect(resolveSqliteDriverOptions({ path })).toMatchObject({
      synchronous: 'NORMAL',
      leaseMs: 30_000,
      maxStalls: 3,
      shards: 1,
    });
  });
});

/**
 * Runs in a child process: compiles the driver with SWC on the fly, claims one message with a
 * one-minute lease and a 100 ms heartbeat, reports it, and waits to be killed.
 */
const CHILD_CLAIMS_AND_WAITS = `
const fs = require('node:fs');
const { transformSync } = require('@swc/core');
require.extensions['.ts'] = (module, filename) => {
  const source = fs.readFileSync(filename, 'utf8');
  const { code } = transformSync(source, {
    filename,
    jsc: { parser: { syntax: 'typescript' }, target: 'es2022' },
    module: { type: 'commonjs' },
  });
  module._compile(code, filename);
};
const { SqliteQueueDriver } = require('./src/queue/drivers/sqlite-messages/sqlite.driver.ts');
const driver = new SqliteQueueDriver({ path: process.env.QUEUE_DB, leaseMs: 60000, heartbeatMs: 100 });
driver.consume(process.env.QUEUE_NAME, (d) => process.stdout.write('HELD ' + d.id + '\\n'), { prefetch: 1 });
setInterval(() => {}, 1000);
`;
