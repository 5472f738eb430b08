import BetterSqlite3 from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'pg';
import { DataSource, QueryFailedError } from 'typeorm';
import { migratedPgSchema, type MigratedPgSchema } from '../../test/helpers/pg-schema';
import { describeWithService, postgresServiceAt } from '../../test/helpers/service-available';
import { newTask } from '../tasks/task.factory';
import { migrations } from './migrations';
import { pgPool } from './pg-task-statements';
import type { TaskStatements } from './task-statements';
import { createTaskStatements } from './task-statements.factory';
import { TaskStatus } from './task-status.enum';
import { TaskEntity } from './task.entity';

/** A row as another connection sees it: only what has been committed. */
type Committed = { status: string; claim_token: string | null; result: string | null };

/** One database under test, opened once per suite and emptied before each test. */
interface Harness {
  dataSource: DataSource;
  store: TaskStatements;
  committed(id: string): Promise<Committed | undefined>;
  /** The driver's code for a unique-key violation, as TasksService's duplicate check reads it. */
  uniqueViolation: string;
}

const task = (extra: Partial<Parameters<typeof newTask>[0]> = {}) =>
  newTask({ action: 'a', data: { x: 1 }, queue: 'q', maxAttempts: 3, ...extra });

/**
 * Every statement of the contract, run the same way on each database: the state machine with
 * its fences, the reconciler's and the callback dispatcher's queries, retention, listing.
 */
function contractCases(get: () => Harness): void {
  let h: Harness;
  let store: TaskStatements;
  beforeEach(async () => {
    h = get();
    store = h.store;
    await h.dataSource.query('DELETE FROM tasks');
  });
  const typeorm = (id: string) => h.dataSource.getRepository(TaskEntity).findOneBy({ id });

  it('reads rows exactly as TypeORM hydrates them', async () => {
    const row = task({
      callbackUrl: 'https://example.com/cb',
      runAt: 123,
      timeoutMs: 5,
      idempotencyKey: 'hydrate',
    });
    await store.insert([row]);
    const fast = await store.findById(row.id);
    expect(fast).toBeInstanceOf(TaskEntity);
    expect(fast).toEqual(await typeorm(row.id));
    expect(fast).toEqual(row);
    expect(await store.findById('missing')).toBeNull();
    expect(await store.findByIdempotencyKey('hydrate')).toEqual(row);
    expect(await store.findByIdempotencyKey('other')).toBeNull();
    expect(await store.exists(row.id)).toBe(true);
    expect(await store.exists('missing')).toBe(false);
  });

  it('claims a queued row of an earlier attempt, or a redelivered running one of this attempt', async () => {
    const [a, b, stale, taken] = [task(), task(), task(), task()];
    await store.insert([a, b, stale, taken]);
    expect(await store.claim(stale.id, 2, 's2', false)).toBe(true); // attempt 2 already holds it
    const value = await Promise.all([
      store.claim(a.id, 1, 'a1', false),
      store.claim(b.id, 1, 'b1', false),
      store.claim(stale.id, 1, 's1', false), // an older attempt's message
      store.claim(stale.id, 1, 's1b', true), // redelivered, but of an older attempt
      store.claim('missing', 1, 'm1', false),
      store.claim(taken.id, 1, 't1', false),
      store.claim(a.id, 1, 'a2', false), // a duplicate delivery of a's message
      store.claim(taken.id, 1, 't2', true), // redelivered: takes the claim over
    ]);
    expect(value).toEqual([true, true, false, false, false, true, false, true]);
    expect(await h.committed(a.id)).toMatchObject({ status: 'running', claim_token: 'a1' });
    expect(await h.committed(stale.id)).toMatchObject({ claim_token: 's2' });
    expect(await h.committed(taken.id)).toMatchObject({ claim_token: 't2' });
    expect(await typeorm(taken.id)).toMatchObject({ attempt: 1, status: TaskStatus.Running });
    // Every claim is a delivery: the redelivered one shows as a second pickup of attempt 1.
    expect(await typeorm(taken.id)).toMatchObject({ deliveries: 2 });
    expect(await typeorm(a.id)).toMatchObject({ attempt: 1, deliveries: 1 });
    expect(await typeorm(stale.id)).toMatchObject({ attempt: 2, deliveries: 1 });
    expect(await typeorm(b.id)).toMatchObject({ deliveries: 1 });
  });

  it('claims, completes and queues the callback with the same conditions', async () => {
    const plain = task();
    const withCallback = task({ callbackUrl: 'https://example.com/cb' });
    await store.insert([plain, withCallback]);
    expect(await store.claim(plain.id, 1, 't1', false)).toBe(true);
    expect(await store.claim(plain.id, 1, 't2', false)).toBe(false); // duplicate
    expect(await store.claim(plain.id, 1, 't2', true)).toBe(true); // redelivered: takes over
    expect(await store.complete(plain.id, 't1', { no: 1 })).toBe(false); // fenced out
    expect(await store.progress(plain.id, 't2', 50, 'half')).toBe(true);
    expect(await store.complete(plain.id, 't2', { ok: true })).toBe(true);
    expect(await store.complete(plain.id, 't2', { ok: true })).toBe(false); // once
    const done = await typeorm(plain.id);
    expect(done).toMatchObject({
      status: TaskStatus.Completed,
      result: '{"ok":true}',
      claimToken: null,
      attempt: 1,
      progress: 50,
      progressMessage: 'half',
      callbackStatus: null,
      callbackNextAt: null,
    });
    expect(done!.processedAt).toEqual(expect.any(Number));

    expect(await store.claim(withCallback.id, 1, 'c', false)).toBe(true);
    expect(await store.fail(withCallback.id, 'c', 'boom', false)).toBe(true);
    expect(await typeorm(withCallback.id)).toMatchObject({
      status: TaskStatus.Queued,
      error: 'boom',
      processedAt: null,
      callbackStatus: null,
    });
    expect(await store.claim(withCallback.id, 1, 'd', false)).toBe(false); // attempt not newer
    expect(await store.claim(withCallback.id, 2, 'd', false)).toBe(true);
    expect(await store.fail(withCallback.id, 'd', 'again', true)).toBe(true);
    const failed = await typeorm(withCallback.id);
    expect(failed).toMatchObject({ status: TaskStatus.Failed, callbackStatus: 'pending' });
    expect(failed!.callbackNextAt).toBe(failed!.processedAt);
  });

  it('records outcomes only under the current token, and queues callbacks', async () => {
    const plain = task();
    const withCallback = task({ callbackUrl: 'https://example.com/cb' });
    await store.insert([plain, withCallback]);
    await Promise.all([
      store.claim(plain.id, 1, 'p1', false),
      store.claim(withCallback.id, 1, 'w1', false),
    ]);
    const value = await Promise.all([
      store.complete(plain.id, 'wrong', { no: 1 }, 1000),
      store.complete(withCallback.id, 'w1', { ok: true }, 2000),
      store.complete('missing', 'x', null, 2000),
    ]);
    expect(value).toEqual([false, true, false]);
    expect(await store.complete(withCallback.id, 'w1', { again: 1 }, 3000)).toBe(false); // once
    expect(await typeorm(withCallback.id)).toMatchObject({
      status: TaskStatus.Completed,
      result: '{"ok":true}',
      claimToken: null,
      processedAt: 2000,
      updatedAt: 2000,
      callbackStatus: 'pending',
      callbackNextAt: 2000,
    });
    expect(await typeorm(plain.id)).toMatchObject({
      status: TaskStatus.Running,
      result: null,
      claimToken: 'p1',
      callbackStatus: null,
    });
  });

  it('fails for a retry or for good, and stores progress, all fenced', async () => {
    const retried = task({ callbackUrl: 'https://example.com/cb' });
    const dead = task({ callbackUrl: 'https://example.com/cb' });
    await store.insert([retried, dead]);
    await Promise.all([
      store.claim(retried.id, 1, 'r1', false),
      store.claim(dead.id, 3, 'd3', false),
    ]);
    expect(
      await Promise.all([
        store.progress(retried.id, 'r1', 40, 'almost half'),
        store.progress(dead.id, 'wrong', 99, null),
      ]),
    ).toEqual([true, false]);
    expect(await typeorm(retried.id)).toMatchObject({
      progress: 40,
      progressMessage: 'almost half',
    });
    expect(
      await Promise.all([
        store.fail(retried.id, 'r1', 'boom', false, 5000),
        store.fail(dead.id, 'wrong', 'boom', true, 5000),
      ]),
    ).toEqual([true, false]);
    expect(await store.fail(dead.id, 'd3', 'gave up', true, 6000)).toBe(true);
    expect(await typeorm(retried.id)).toMatchObject({
      status: TaskStatus.Queued,
      error: 'boom',
      processedAt: null,
      claimToken: null,
      callbackStatus: null,
      callbackNextAt: null,
    });
    expect(await typeorm(dead.id)).toMatchObject({
      status: TaskStatus.Failed,
      error: 'gave up',
      processedAt: 6000,
      callbackStatus: 'pending',
      callbackNextAt: 6000,
    });
    // A retry's next attempt claims the queued row again.
    expect(await store.claim(retried.id, 2, 'r2', false)).toBe(true);
  });

  it('commits a completion or failure as a write of its own, fenced', async () => {
    const [done, failed] = [task(), task()];
    await store.insert([done, failed]);
    await store.claim(done.id, 1, 'd', false);
    await store.claim(failed.id, 1, 'f', false);
    const committed = jest.fn();
    const completion = store.completion(done.id, 'd', { n: 1 }, committed);
    completion.committed(await completion.commit());
    const failure = store.failure(failed.id, 'f', 'nope', true, committed);
    failure.committed(await failure.commit());
    expect(committed.mock.calls).toEqual([[true], [true]]);
    expect(await typeorm(done.id)).toMatchObject({ status: 'completed', result: '{"n":1}' });
    expect(await typeorm(failed.id)).toMatchObject({ status: 'failed', error: 'nope' });
    // Fenced: a second completion under the same token changes nothing.
    expect(await store.completion(done.id, 'd', { n: 2 }, committed).commit()).toBe(false);
  });

  it('inserts many all or none, and reports a unique violation as TypeORM does', async () => {
    const first = task({ idempotencyKey: 'k' });
    await store.insert([first]);
    const batch = [task(), task({ idempotencyKey: 'k' }), task()];
    const error = await store.insert(batch).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QueryFailedError);
    expect((error as QueryFailedError).driverError).toMatchObject({ code: h.uniqueViolation });
    expect(await typeorm(batch[0].id)).toBeNull();
    // Writes of the same turn share a commit, but one failing write fails alone.
    const ok1 = [task(), task()];
    const clash = [task(), task({ idempotencyKey: 'k' })];
    const ok2 = [task()];
    const outcomes = await Promise.allSettled([
      store.insert(ok1),
      store.insert(clash),
      store.insert(ok2),
    ]);
    expect(outcomes.map((outcome) => outcome.status)).toEqual([
      'fulfilled',
      'rejected',
      'fulfilled',
    ]);
    expect((outcomes[1] as PromiseRejectedResult).reason).toBeInstanceOf(QueryFailedError);
    for (const row of [...ok1, ...ok2]) expect(await h.committed(row.id)).toBeDefined();
    // The clashing caller's other row did not go in either.
    for (const row of clash) expect(await h.committed(row.id)).toBeUndefined();
  });

  it('inserts the rows whose idempotency key is free and names them, skipping taken keys', async () => {
    const stored = task({ idempotencyKey: 'taken' });
    await store.insert([stored]);
    const fresh = task({ idempotencyKey: 'fresh' });
    const unkeyed = task();
    const clash = task({ idempotencyKey: 'taken' });
    const twin = task({ idempotencyKey: 'fresh' }); // the same key as an earlier row of the batch
    const other = task({ idempotencyKey: 'other' });
    const ids = await store.insertNew([fresh, unkeyed, clash, twin, other]);
    expect([...ids].sort()).toEqual([fresh.id, unkeyed.id, other.id].sort());
    for (const row of [fresh, unkeyed, other]) expect(await h.committed(row.id)).toBeDefined();
    for (const row of [clash, twin]) expect(await h.committed(row.id)).toBeUndefined();
    expect((await store.findByIdempotencyKey('taken'))?.id).toBe(stored.id);
    expect((await store.findByIdempotencyKey('fresh'))?.id).toBe(fresh.id);
    expect(await store.insertNew([])).toEqual([]);
    // Every key taken: nothing goes in, and that is no error.
    expect(await store.insertNew([task({ idempotencyKey: 'taken' })])).toEqual([]);
  });

  it('inserts new rows exactly once when callers race for the same keys', async () => {
    const keys = Array.from({ length: 20 }, (_, i) => `race-${i}`);
    const batches = [0, 1, 2].map(() => keys.map((idempotencyKey) => task({ idempotencyKey })));
    const answered = await Promise.all(batches.map((rows) => store.insertNew(rows)));
    expect(answered.flat()).toHaveLength(keys.length);
    for (const key of keys) {
      const winner = await store.findByIdempotencyKey(key);
      expect(answered.flat()).toContain(winner!.id);
    }
  });

  it('fails the whole insert of new rows on any conflict but the idempotency key', async () => {
    const stored = task({ idempotencyKey: 'first' });
    await store.insert([stored]);
    const ok = task({ idempotencyKey: 'ok' });
    const sameId = { ...task({ idempotencyKey: 'second' }), id: stored.id };
    const error = await store.insertNew([ok, sameId]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QueryFailedError);
    expect(await h.committed(ok.id)).toBeUndefined();
  });

  it('settles each write only once it is committed', async () => {
    const rows = Array.from({ length: 50 }, () => task());
    await Promise.all(
      rows.map(async (row) => {
        await store.insert([row]);
        expect(await h.committed(row.id)).toMatchObject({ status: 'queued' });
        const token = row.id.replace(/^./, 'c');
        expect(await store.claim(row.id, 1, token, false)).toBe(true);
        expect(await h.committed(row.id)).toMatchObject({ claim_token: token });
        expect(await store.complete(row.id, token, 1)).toBe(true);
        expect(await h.committed(row.id)).toMatchObject({ status: 'completed', result: '1' });
      }),
    );
  });

  it('under concurrent duplicate deliveries, records each outcome exactly once', async () => {
    const rows = Array.from({ length: 300 }, () => task());
    await store.insert(rows);
    let recorded = 0;
    await Promise.all(
      rows.flatMap((row) =>
        [1, 2, 3].map(async (copy) => {
          const token = `${copy}${row.id.slice(1)}`;
          // Every copy after the first arrives as a plain duplicate.
          if (!(await store.claim(row.id, 1, token, false))) return;
          if (await store.complete(row.id, token, copy)) recorded += 1;
        }),
      ),
    );
    expect(recorded).toBe(rows.length);
    expect(await store.countQueued()).toBe(0);
    const completed = await store.list({ limit: 1000, status: TaskStatus.Completed });
    expect(completed).toHaveLength(rows.length);
    for (const row of rows.slice(0, 10)) {
      expect(await h.committed(row.id)).toMatchObject({ status: 'completed' });
    }
  });

  it('cancels queued and running tasks only, fencing out the holder, and queues callbacks', async () => {
    const queued = task({ callbackUrl: 'https://example.com/cb' });
    const running = task();
    const done = task();
    await store.insert([queued, running, done]);
    await store.claim(running.id, 1, 'r', false);
    await store.claim(done.id, 1, 'd', false);
    await store.complete(done.id, 'd', null);
    expect(await store.cancel(queued.id)).toBe(true);
    expect(await store.cancel(running.id)).toBe(true);
    expect(await store.cancel(done.id)).toBe(false);
    expect(await store.cancel(queued.id)).toBe(false);
    expect(await store.cancel('missing')).toBe(false);
    const cancelled = await typeorm(queued.id);
    expect(cancelled).toMatchObject({ status: 'cancelled', callbackStatus: 'pending' });
    expect(cancelled!.callbackNextAt).toBe(cancelled!.processedAt);
    expect(await typeorm(running.id)).toMatchObject({ status: 'cancelled', callbackStatus: null });
    // The running holder's outcome no longer lands.
    expect(await store.complete(running.id, 'r', 1)).toBe(false);
    expect(await store.progress(running.id, 'r', 1, null)).toBe(false);
    expect((await store.cancelledAmong([queued.id, done.id, running.id, 'x'])).sort()).toEqual(
      [queued.id, running.id].sort(),
    );
    expect(await store.cancelledAmong([])).toEqual([]);
  });

  it('requeues a failed or cancelled task with fresh attempts, nothing else', async () => {
    const failed = task({ callbackUrl: 'https://example.com/cb', runAt: 5 });
    const cancelled = task();
    const queued = task();
    await store.insert([failed, cancelled, queued]);
    await store.claim(failed.id, 3, 'f', false);
    await store.progress(failed.id, 'f', 70, 'most');
    await store.fail(failed.id, 'f', 'dead', true);
    await store.cancel(cancelled.id);
    expect(await store.requeueFinished(failed.id)).toBe(true);
    expect(await store.requeueFinished(cancelled.id)).toBe(true);
    expect(await store.requeueFinished(queued.id)).toBe(false);
    expect(await store.requeueFinished('missing')).toBe(false);
    expect(await typeorm(failed.id)).toMatchObject({
      status: 'queued',
      attempt: 0,
      deliveries: 0,
      result: null,
      error: null,
      progress: null,
      progressMessage: null,
      claimToken: null,
      startedAt: null,
      processedAt: null,
      runAt: null,
      callbackStatus: null,
      callbackAttempts: 0,
      callbackError: null,
      callbackNextAt: null,
    });
    expect(await store.countQueued()).toBe(3);
    expect(await store.claim(failed.id, 1, 'again', false)).toBe(true);
  });

  it('lists newest first with an id tiebreak, by filters and keyset pages', async () => {
    const rows = [
      task({ now: 1000, action: 'x' }),
      task({ now: 2000, action: 'y' }),
      task({ now: 2000, action: 'x' }),
      task({ now: 3000, action: 'x' }),
      task({ now: 4000, action: 'y' }),
    ];
    await store.insert(rows);
    await store.claim(rows[3].id, 1, 't', false);
    const ids = (list: TaskEntity[]) => list.map((t) => t.id);
    const newest = [...rows].sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : -1));
    expect(ids(await store.list({ limit: 10 }))).toEqual(ids(newest));
    const first = await store.list({ limit: 2 });
    expect(first[0]).toBeInstanceOf(TaskEntity);
    const last = first[1];
    const second = await store.list({
      limit: 2,
      before: { createdAt: last.createdAt, id: last.id },
    });
    expect(ids(second)).toEqual(ids(newest.slice(2, 4)));
    expect(ids(await store.list({ limit: 10, action: 'x' }))).toEqual(
      ids(newest.filter((t) => t.action === 'x')),
    );
    expect(ids(await store.list({ limit: 10, status: TaskStatus.Running }))).toEqual([rows[3].id]);
    expect(ids(await store.list({ limit: 10, createdAfter: 1000, createdBefore: 4000 }))).toEqual(
      ids(newest.filter((t) => t.createdAt > 1000 && t.createdAt < 4000)),
    );
    expect(
      ids(
        await store.list({
          limit: 10,
          action: 'x',
          status: TaskStatus.Queued,
          before: { createdAt: 3000, id: rows[3].id },
        }),
      ),
    ).toEqual(ids(newest.filter((t) => t.action === 'x' && t.createdAt < 3000)));
  });

  it('keeps tenants apart in the query: get, key lookup, list, cancel, requeue, and claims answer the actor', async () => {
    const acme = { keyName: 'ci', tenant: 'acme' };
    const globex = { keyName: 'ops', tenant: 'globex' };
    const mine = task({ actor: acme, idempotencyKey: 'same' });
    const theirs = task({ actor: globex, idempotencyKey: 'same' }); // same key, other tenant
    const open = task({ idempotencyKey: 'same' }); // the default tenant's
    await store.insert([mine, theirs, open]);
    expect(await store.insertNew([task({ actor: acme, idempotencyKey: 'same' })])).toEqual([]);

    expect((await store.findById(mine.id, 'acme'))?.actorKey).toBe('ci');
    expect(await store.findById(mine.id, 'globex')).toBeNull();
    expect((await store.findById(mine.id))?.tenant).toBe('acme'); // internal: any tenant
    expect((await store.findByIdempotencyKey('same', 'globex'))?.id).toBe(theirs.id);
    expect((await store.findByIdempotencyKey('same'))?.id).toBe(open.id);
    expect((await store.list({ tenant: 'acme', limit: 10 })).map((r) => r.id)).toEqual([mine.id]);
    expect(
      await store.list({ tenant: 'acme', status: TaskStatus.Queued, action: 'b', limit: 10 }),
    ).toEqual([]);

    expect(await store.cancel(mine.id, 'globex')).toBe(false);
    expect(await store.cancel(mine.id, 'acme')).toBe(true);
    expect(await store.requeueFinished(mine.id, 'globex')).toBe(false);
    expect(await store.requeueFinished(mine.id, 'acme')).toBe(true);

    expect(await store.claimActor(mine.id, 1, 't1', false)).toEqual(acme);
    expect(await store.claimActor(mine.id, 1, 't2', false)).toBeNull(); // a duplicate
    expect(await store.claimActor(open.id, 1, 't3', false)).toEqual({
      keyName: null,
      tenant: 'default',
    });
    expect(await store.actorOf(theirs.id)).toEqual(globex);
    expect(await store.actorOf('missing')).toBeNull();
  });

  it("answers the reconciler's queries: keys, stale rows, due counts", async () => {
    const old = [1000, 1000, 1001, 1002].map((now) => task({ now, queue: 'r' }));
    const delayed = task({ now: 1000, queue: 'r', runAt: 50_000 });
    const fresh = task({ now: 9000, queue: 'r' });
    const elsewhere = task({ now: 1000, queue: 'other' });
    const held = task({ now: 1000, queue: 'r' });
    await store.insert([...old, delayed, fresh, elsewhere, held]);
    await store.claim(held.id, 1, 'h', false);
    const ids = (list: { id: string }[]) => list.map((t) => t.id);
    const byKey = (a: TaskEntity, b: TaskEntity) =>
      a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1);

    // Keys of every queued task, oldest first, a page at a time.
    const queued = [...old, delayed, fresh, elsewhere].sort(byKey);
    const page1 = await store.queuedKeys(3);
    expect(page1).toEqual(
      queued.slice(0, 3).map((t) => ({ id: t.id, queue: t.queue, createdAt: t.createdAt })),
    );
    const page2 = await store.queuedKeys(3, page1[2]);
    expect(ids(page2)).toEqual(ids(queued.slice(3, 6)));
    expect(ids(await store.queuedKeys(3, page2[2]))).toEqual(ids(queued.slice(6)));
    const some = await store.queuedByIds([old[0].id, held.id, 'missing', fresh.id]);
    expect(ids(some).sort()).toEqual([old[0].id, fresh.id].sort());
    expect(some[0]).toBeInstanceOf(TaskEntity);
    expect(await store.queuedByIds([])).toEqual([]);

    // Queued rows untouched since 5000 and due by then, oldest first, keyset by (updatedAt, id).
    const stale = [...old].sort((a, b) => a.updatedAt - b.updatedAt || (a.id < b.id ? -1 : 1));
    const s1 = await store.staleQueued('r', 5000, 2);
    expect(ids(s1)).toEqual(ids(stale.slice(0, 2)));
    const s2 = await store.staleQueued('r', 5000, 10, { updatedAt: s1[1].updatedAt, id: s1[1].id });
    expect(ids(s2)).toEqual(ids(stale.slice(2)));
    expect(await store.countQueuedDue('r', 10_000)).toBe(5);
    expect(await store.countQueuedDue('r', 60_000)).toBe(6);
    expect(await store.countQueued()).toBe(7);
    // When the oldest due queued row (by creation) became due: an index seek, for metrics.
    expect(await store.oldestQueuedAt('r', 10_000)).toBe(1000);
    expect(await store.oldestQueuedAt('other', 10_000)).toBe(1000);
    expect(await store.oldestQueuedAt('none', 10_000)).toBeNull();
    const later = task({ now: 500, queue: 'later', runAt: 50_000 });
    await store.insert([later]);
    expect(await store.oldestQueuedAt('later', 10_000)).toBeNull(); // not due yet
    expect(await store.oldestQueuedAt('later', 60_000)).toBe(50_000); // due since its runAt

    // A running row whose claim went silent, and its fenced takeover.
    const silent = await store.staleRunning('r', Date.now() + 1000, 10);
    expect(ids(silent)).toEqual([held.id]);
    expect(await store.staleRunning('r', 0, 10)).toEqual([]);
    expect(await store.reclaim(held.id, 'wrong', 2, 'n')).toBe(false);
    expect(await store.reclaim(held.id, 'h', 1, 'n')).toBe(false); // attempt not newer
    expect(await store.reclaim(held.id, 'h', 2, 'n')).toBe(true);
    expect(await store.reclaim(held.id, 'h', 3, 'm')).toBe(false); // token changed
    expect(await typeorm(held.id)).toMatchObject({
      attempt: 2,
      deliveries: 2,
      claimToken: 'n',
      status: 'running',
    });
    expect(await store.complete(held.id, 'h', 1)).toBe(false);
    expect(await store.complete(held.id, 'n', 1)).toBe(true);
    expect(await store.reclaim(held.id, 'n', 3, 'o')).toBe(false); // no longer running

    // At start-up, running rows of volatile queues go back to queued.
    const lost = task({ queue: 'mem' });
    await store.insert([lost]);
    await store.claim(lost.id, 1, 'l', false);
    expect(await store.requeueRunning([])).toBe(0);
    expect(await store.requeueRunning(['mem', 'other'])).toBe(1);
    expect(await typeorm(lost.id)).toMatchObject({ status: 'queued', claimToken: null });
  });

  it('claims, settles and abandons callbacks under the values last seen', async () => {
    const due = task({ callbackUrl: 'https://example.com/a' });
    const later = task({ callbackUrl: 'https://example.com/b' });
    await store.insert([due, later]);
    for (const [row, now] of [
      [due, 1000],
      [later, 5000],
    ] as const) {
      await store.claim(row.id, 1, 't', false);
      await store.complete(row.id, 't', null, now);
    }
    expect((await store.dueCallbacks(2000, 10)).map((t) => t.id)).toEqual([due.id]);
    const [seen] = await store.dueCallbacks(6000, 1);
    expect(seen).toBeInstanceOf(TaskEntity);
    expect(seen).toMatchObject({ id: due.id, callbackAttempts: 0, callbackNextAt: 1000 });

    const claimed = await store.claimCallback(seen, 9000);
    expect(claimed).toMatchObject({ attempt: 1, leaseUntil: 9000 });
    expect(claimed!.task).toMatchObject({ callbackAttempts: 1, callbackNextAt: 9000 });
    expect(await store.claimCallback(seen, 9500)).toBeNull(); // another process got there first
    expect((await store.dueCallbacks(6000, 10)).map((t) => t.id)).toEqual([later.id]);

    // A settle under a lease that is no longer current changes nothing.
    const stale = { ...claimed!, leaseUntil: 1234 };
    expect(
      await store.settleCallback(stale, { status: 'delivered', error: null, nextAt: null }),
    ).toBe(false);
    expect(
      await store.settleCallback(claimed!, { status: 'pending', error: 'busy', nextAt: 9900 }),
    ).toBe(true);
    expect(await typeorm(due.id)).toMatchObject({
      callbackStatus: 'pending',
      callbackError: 'busy',
      callbackNextAt: 9900,
      callbackAttempts: 1,
    });
    expect(
      await store.settleCallback(claimed!, { status: 'failed', error: 'x', nextAt: null }),
    ).toBe(false);

    const again = (await store.dueCallbacks(9900, 10)).find((t) => t.id === due.id);
    const second = await store.claimCallback(again!, 20_000);
    expect(
      await store.settleCallback(second!, { status: 'delivered', error: null, nextAt: null }),
    ).toBe(true);
    expect(await typeorm(due.id)).toMatchObject({
      callbackStatus: 'delivered',
      callbackAttempts: 2,
      callbackNextAt: null,
    });

    const [last] = await store.dueCallbacks(6000, 1);
    expect(await store.abandonCallback({ ...last, callbackAttempts: 7 }, 'stale view')).toBe(false);
    expect(await store.abandonCallback(last, 'gave up')).toBe(true);
    expect(await typeorm(later.id)).toMatchObject({
      callbackStatus: 'failed',
      callbackError: 'gave up',
      callbackNextAt: null,
    });
    expect(await store.dueCallbacks(1e12, 10)).toEqual([]);
  });

  it('deletes expired terminal tasks in batches, keeping pending callbacks and open tasks', async () => {
    const done = Array.from({ length: 5 }, () => task());
    const pending = task({ callbackUrl: 'https://example.com/cb' });
    const recent = task();
    const running = task();
    const queued = task();
    await store.insert([...done, pending, recent, running, queued]);
    for (const row of [...done, pending]) {
      await store.claim(row.id, 1, 't', false);
      await store.complete(row.id, 't', null, 1000);
    }
    await store.claim(recent.id, 1, 't', false);
    await store.fail(recent.id, 't', 'x', true, 9000);
    await store.claim(running.id, 1, 't', false);
    expect(await store.deleteExpired(5000, 3)).toBe(3);
    expect(await store.deleteExpired(5000, 3)).toBe(2);
    expect(await store.deleteExpired(5000, 3)).toBe(0);
    for (const row of done) expect(await store.exists(row.id)).toBe(false);
    for (const row of [pending, recent, running, queued]) {
      expect(await store.exists(row.id)).toBe(true);
    }
  });
}

describe('createTaskStatements', () => {
  it('fails the boot, by name, for a database it has no statements for', () => {
    const dataSource = {
      options: { type: 'mysql' },
      getMetadata: () => ({}),
    } as unknown as DataSource;
    expect(() => createTaskStatements(dataSource)).toThrow(
      'task statements: database type "mysql" is not supported (use better-sqlite3 or postgres)',
    );
  });
});

describe('TaskStatements on SQLite', () => {
  let dir: string;
  let path: string;
  let dataSource: DataSource;
  let reader: BetterSqlite3.Database;
  let store: TaskStatements;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'taskq-statements-'));
    path = join(dir, 'tasks.db');
    dataSource = await new DataSource({
      type: 'better-sqlite3',
      database: path,
      entities: [TaskEntity],
      migrations,
      migrationsRun: true,
    }).initialize();
    store = createTaskStatements(dataSource);
    reader = new BetterSqlite3(path, { readonly: true });
  });

  afterAll(async () => {
    reader?.close();
    await dataSource?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  contractCases(() => ({
    dataSource,
    store,
    committed: (id) =>
      Promise.resolve(
        reader.prepare('SELECT status, claim_token, result FROM tasks WHERE id = ?').get(id) as
          Committed | undefined,
      ),
    uniqueViolation: 'SQLITE_CONSTRAINT_UNIQUE',
  }));

  const typeorm = (id: string) => dataSource.getRepository(TaskEntity).findOneBy({ id });

  it('never joins a TypeORM transaction left open across awaits', async () => {
    const row = task();
    await store.insert([row]);
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const outer = dataSource
      .transaction(async (manager) => {
        await manager.update(TaskEntity, { id: row.id }, { priority: 7 });
        await held;
        throw new Error('roll back');
      })
      .catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 5));
    let claimed = false;
    const claim = store.claim(row.id, 1, 't', false).then((ok) => (claimed = ok));
    // A cold write waits just the same.
    const cancel = store.cancel('missing');
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(claimed).toBe(false); // waiting for the transaction to end
    release();
    await outer;
    await claim;
    expect(await cancel).toBe(false);
    expect(claimed).toBe(true);
    expect(await typeorm(row.id)).toMatchObject({ status: TaskStatus.Running, priority: 0 });
  });
});

const PG_URL =
  process.env.DATABASE_URL ??
  process.env.TEST_DATABASE_URL ??
  'postgres://postgres@127.0.0.1:5432/test';

describeWithService(postgresServiceAt(PG_URL), 'TaskStatements on PostgreSQL', () => {
  let pgSchema: MigratedPgSchema;
  let dataSource: DataSource;
  let store: TaskStatements;
  /** Connections of their own, outside TypeORM's pool: they see only what has been committed. */
  let outside: Pool;

  beforeAll(async () => {
    outside = new Pool({ connectionString: PG_URL, max: 4 });
    pgSchema = await migratedPgSchema('unit_pg', PG_URL);
    dataSource = pgSchema.dataSource;
    store = createTaskStatements(dataSource);
  });

  afterAll(async () => {
    await pgSchema?.drop();
    await outside?.end();
  });

  const committed = async (id: string) =>
    (
      await outside.query<Committed>(
        `SELECT status, claim_token, result FROM ${pgSchema.schema}.tasks WHERE id = $1`,
        [id],
      )
    ).rows[0];

  contractCases(() => ({ dataSource, store, committed, uniqueViolation: '23505' }));

  /** Counts the statements sent to the pool while `work` runs. */
  async function statements<T>(work: () => Promise<T>): Promise<{ value: T; sent: number }> {
    const spy = jest.spyOn(pgPool(dataSource)!, 'query');
    try {
      const value = await work();
      return { value, sent: spy.mock.calls.length };
    } finally {
      spy.mockRestore();
    }
  }

  it("finds TypeORM's pg pool", () => {
    expect(pgPool(dataSource)).toBe((dataSource.driver as unknown as { master: unknown }).master);
  });

  it('claims one turn in one statement; two writes to one row never share one', async () => {
    const [a, b, stale, taken] = [task(), task(), task(), task()];
    await store.insert([a, b, stale, taken]);
    expect(await store.claim(stale.id, 2, 's2', false)).toBe(true);
    const { value, sent } = await statements(() =>
      Promise.all([
        store.claim(a.id, 1, 'a1', false),
        store.claim(b.id, 1, 'b1', false),
        store.claim(stale.id, 1, 's1', false),
        store.claim(stale.id, 1, 's1b', true),
        store.claim('missing', 1, 'm1', false),
        store.claim(taken.id, 1, 't1', false),
        store.claim(a.id, 1, 'a2', false), // a duplicate delivery of a's message
        store.claim(taken.id, 1, 't2', true), // redelivered: takes the claim over
      ]),
    );
    expect(value).toEqual([true, true, false, false, false, true, false, true]);
    // The later writes to a row wait for the next statement.
    expect(sent).toBe(2);
    expect(await committed(taken.id)).toMatchObject({ claim_token: 't2' });
  });

  it('records one turn of outcomes in one statement', async () => {
    const [a, b] = [task(), task()];
    await store.insert([a, b]);
    await Promise.all([store.claim(a.id, 1, 'a', false), store.claim(b.id, 1, 'b', false)]);
    const { value, sent } = await statements(() =>
      Promise.all([
        store.complete(a.id, 'wrong', 1, 1000),
        store.complete(b.id, 'b', 1, 2000),
        store.complete('missing', 'x', null, 2000),
      ]),
    );
    expect(value).toEqual([false, true, false]);
    expect(sent).toBe(1);
  });

  it('inserts one turn in one statement; a failing caller is rejected alone, all or none', async () => {
    const first = task({ idempotencyKey: `key-${randomBytes(4).toString('hex')}` });
    await store.insert([first]);
    const ok1 = [task(), task()];
    const clash = [task(), task({ idempotencyKey: first.idempotencyKey })];
    const ok2 = [task()];
    const { value, sent } = await statements(() =>
      Promise.allSettled([store.insert(ok1), store.insert(clash), store.insert(ok2)]),
    );
    expect(value.map((outcome) => outcome.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(sent).toBe(4); // the shared INSERT failed, then one per caller
    const error = (value[1] as PromiseRejectedResult).reason as QueryFailedError;
    expect(error).toBeInstanceOf(QueryFailedError);
    // What TasksService's duplicate-key check looks at.
    expect((error.driverError as { code?: string }).code).toBe('23505');
    for (const row of [...ok1, ...ok2]) expect(await committed(row.id)).toBeDefined();
    // The clashing caller's other row did not go in either.
    for (const row of clash) expect(await committed(row.id)).toBeUndefined();

    const { sent: together } = await statements(() =>
      Promise.all([store.insert([task()]), store.insert([task(), task()]), store.insert([task()])]),
    );
    expect(together).toBe(1);
  });

  it('leaves out of an INSERT only the columns at their default in every row, and reads back each row as written', async () => {
    const fresh = task();
    // Away from the defaults in columns a new task leaves at them.
    const worn = Object.assign(task({ priority: 3, actor: { tenant: 'other', keyName: 'k' } }), {
      status: TaskStatus.Failed,
      attempt: 2,
      deliveries: 2,
      callbackAttempts: 1,
      error: 'boom',
      leaseOwner: 'o',
    });
    const alone = task();
    const spy = jest.spyOn(pgPool(dataSource)!, 'query');
    try {
      await store.insert([fresh, worn]);
      await store.insert([alone]);
      const [both, one] = spy.mock.calls.map(
        ([config]) => (config as unknown as { text: string }).text,
      );
      expect(both).toContain('"error"');
      expect(both).toContain('"lease_owner"');
      expect(one).not.toContain('"error"');
      expect(one).not.toContain('"lease_owner"');
      expect(one).not.toContain('"tenant"');
    } finally {
      spy.mockRestore();
    }
    expect(await store.findById(fresh.id)).toEqual(fresh);
    expect(await store.findById(worn.id)).toEqual(worn);
    expect(await store.findById(alone.id)).toEqual(alone);
  });

  it('sends a statement again when PostgreSQL chose it as a deadlock victim', async () => {
    const row = task();
    await store.insert([row]);
    const pool = pgPool(dataSource)!;
    const deadlock = Object.assign(new Error('deadlock detected'), { code: '40P01' });
    const spy = jest.spyOn(pool, 'query').mockRejectedValueOnce(deadlock as never);
    try {
      expect(await store.claim(row.id, 1, 'd1', false)).toBe(true);
      expect(spy).toHaveBeenCalledTimes(2);
    } finally {
      spy.mockRestore();
    }
    expect(await committed(row.id)).toMatchObject({ claim_token: 'd1' });
  });

  it('finds the rows of every UPDATE by primary key, never by scanning a status', async () => {
    // Thousands queued, none analysed yet: the case in which plain status conditions made the
    // planner read every queued (or ever-running) row's index entry for each batch.
    await store.insert(Array.from({ length: 3000 }, () => task()));
    const ids = Array.from({ length: 16 }, () => task().id);
    const texts = (store as unknown as { sql: Record<string, { text: string }> }).sql;
    const client = await outside.connect();
    try {
      await client.query(`SET search_path = ${pgSchema.schema}`);
      const plan = async (name: string, values: unknown[]) =>
        JSON.stringify(
          (await client.query(`EXPLAIN (FORMAT JSON) ${texts[name].text}`, values)).rows,
        );
      const s = ids.map(() => 'x');
      const n = ids.map(() => 1);
      for (const [name, values] of [
        ['claim', [ids, n, s, n, ids.map(() => true)]],
        ['complete', [ids, s, s, n]],
        ['fail', [ids, s, s, n, ids.map(() => false), n]],
        ['progress', [ids, s, n, s, n]],
        ['reclaim', ['x', 'y', 2, 'z', 1]],
      ] as const) {
        expect(await plan(name, values as unknown as unknown[])).not.toMatch(/idx_tasks_status_/);
      }
    } finally {
      await client.query('RESET search_path');
      client.release();
    }
  });

  it('refuses a bad value to its own caller only, as QueryFailedError', async () => {
    const huge = task();
    huge.status = 'x'.repeat(100) as TaskStatus; // longer than varchar(16)
    await expect(store.insert([huge])).rejects.toBeInstanceOf(QueryFailedError);
    expect(await committed(huge.id)).toBeUndefined();
    const [a, b] = [task(), task()];
    await store.insert([a, b]);
    const outcomes = await Promise.allSettled([
      store.claim(a.id, 1, 'a'.repeat(40), false), // longer than claim_token's varchar(36)
      store.claim(b.id, 1, 'b1', false),
    ]);
    expect(outcomes[0]).toMatchObject({ status: 'rejected', reason: expect.any(QueryFailedError) });
    expect(outcomes[1]).toEqual({ status: 'fulfilled', value: true });
    expect(await committed(a.id)).toMatchObject({ status: 'queued', claim_token: null });
  });
});
