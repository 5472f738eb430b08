import BetterSqlite3, { type Database } from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { QueryRunner } from 'typeorm';
import { CreateTaskEvents1765350000000 } from '../../persistence/migrations/1765350000000-CreateTaskEvents';
import { FEED_RETENTION_MS, SqliteEventFeed } from './sqlite-event-feed';

/** Two connections to one file stand for two processes. */
describe(SqliteEventFeed.name, () => {
  let dir: string;
  let dbs: Database[];
  let clock: number;
  const feeds: SqliteEventFeed[] = [];

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'taskq-feed-'));
    const file = join(dir, 'tasks.db');
    dbs = [new BetterSqlite3(file), new BetterSqlite3(file)];
    for (const db of dbs) db.pragma('journal_mode = WAL');
    const runner = {
      connection: { options: { type: 'better-sqlite3' } },
      query: (sql: string) => Promise.resolve(dbs[0].exec(sql)),
    } as unknown as QueryRunner;
    await new CreateTaskEvents1765350000000().up(runner);
    clock = 1_000_000;
  });
  afterEach(async () => {
    await Promise.all(feeds.splice(0).map((feed) => feed.close()));
    for (const db of dbs) db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function started(db: Database): Promise<{ feed: SqliteEventFeed; received: string[] }> {
    // A poll interval no test waits for: the tests poll by hand.
    const feed = new SqliteEventFeed(db, 60_000, () => clock);
    const received: string[] = [];
    await feed.start((message) => received.push(message));
    feeds.push(feed);
    return { feed, received };
  }

  it('gives every reader each message written by any connection after it started, in order', async () => {
    const a = await started(dbs[0]);
    const b = await started(dbs[1]);

    await a.feed.publish('one');
    await b.feed.publish('two');
    await a.feed.publish('three');
    a.feed.poll();
    b.feed.poll();

    expect(a.received).toEqual(['one', 'two', 'three']);
    expect(b.received).toEqual(['one', 'two', 'three']);
  });

  it('does not replay messages written before the reader started', async () => {
    const a = await started(dbs[0]);
    await a.feed.publish('before');
    const b = await started(dbs[1]);
    await a.feed.publish('after');
    b.feed.poll();

    expect(b.received).toEqual(['after']);
  });

  it('reads a backlog larger than one page in one poll', async () => {
    const a = await started(dbs[0]);
    const b = await started(dbs[1]);
    for (let i = 0; i < 1234; i += 1) await a.feed.publish(String(i));
    b.feed.poll();

    expect(b.received).toHaveLength(1234);
    expect(b.received[1233]).toBe('1233');
  });

  it('starts before the table exists and shares events once a migration created it', async () => {
    dbs[0].exec('DROP TABLE task_events');
    const a = await started(dbs[0]);
    const b = await started(dbs[1]);
    await a.feed.publish('lost: no table yet');
    b.feed.poll();

    dbs[0].exec(
      'CREATE TABLE task_events (seq integer PRIMARY KEY AUTOINCREMENT NOT NULL, at bigint NOT NULL, message text NOT NULL)',
    );
    b.feed.poll(); // finds the table: reads from here on
    await a.feed.publish('shared');
    b.feed.poll();

    expect(b.received).toEqual(['shared']);
  });

  it('prunes rows once they are older than the retention, and a new reader still sees what follows', async () => {
    const a = await started(dbs[0]);
    for (let i = 0; i < 10; i += 1) await a.feed.publish(String(i));
    a.feed.poll();
    const count = () =>
      (dbs[0].prepare('SELECT count(*) AS n FROM task_events').get() as { n: number }).n;
    expect(count()).toBe(10);

    clock += FEED_RETENTION_MS + 10_000;
    a.feed.poll();
    expect(count()).toBe(0);

    // The sequence keeps growing after the table emptied (AUTOINCREMENT), so readers that
    // remember the last seq still see new rows.
    const b = await started(dbs[1]);
    await a.feed.publish('later');
    b.feed.poll();
    a.feed.poll();
    expect(b.received).toEqual(['later']);
    expect(a.received.at(-1)).toBe('later');
  });
});
