import { GroupCommit, type Outcome } from './group-commit';

const ok = <R>(value: R): Outcome<R> => ({ ok: true, value });

describe(GroupCommit.name, () => {
  it('runs what one turn submits as one batch and answers each caller', async () => {
    const batches: number[][] = [];
    const commit = new GroupCommit<number, number>(
      (items) => {
        batches.push(items);
        return items.map((n) => ok(n * 2));
      },
      { maxBatch: 100 },
    );
    expect(await Promise.all([1, 2, 3].map((n) => commit.submit(n)))).toEqual([2, 4, 6]);
    expect(batches).toEqual([[1, 2, 3]]);
  });

  it('bounds a batch by count or by size, an oversized item going alone', async () => {
    const batches: string[][] = [];
    const commit = new GroupCommit<string, void>(
      (items) => {
        batches.push(items);
        return items.map(() => ok(undefined));
      },
      { maxBatch: 4, size: (item) => item.length },
    );
    await Promise.all(['aa', 'bb', 'c', 'dddddd', 'e'].map((s) => commit.submit(s)));
    expect(batches).toEqual([['aa', 'bb'], ['c'], ['dddddd'], ['e']]);
  });

  it('keeps two writes to one key apart and in submission order', async () => {
    const batches: string[][] = [];
    const commit = new GroupCommit<string, string>(
      async (items) => {
        batches.push(items);
        await new Promise((resolve) => setTimeout(resolve, 2));
        return items.map((item) => ok(item));
      },
      { maxBatch: 10, key: (item) => item[0], maxInFlight: 2 },
    );
    await Promise.all(['a1', 'b1', 'a2', 'c1', 'a3'].map((s) => commit.submit(s)));
    expect(batches).toEqual([['a1', 'b1', 'c1'], ['a2'], ['a3']]);
  });

  it('holds at most maxInFlight batches; later items gather for the next', async () => {
    let running = 0;
    let most = 0;
    const batches: number[][] = [];
    const commit = new GroupCommit<number, number>(
      async (items) => {
        running += 1;
        most = Math.max(most, running);
        batches.push(items);
        await new Promise((resolve) => setTimeout(resolve, 5));
        running -= 1;
        return items.map(ok);
      },
      { maxBatch: 2, maxInFlight: 2 },
    );
    await Promise.all([1, 2, 3, 4, 5, 6, 7].map((n) => commit.submit(n)));
    expect(most).toBe(2);
    expect(batches.flat()).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });

  it('rejects only the caller whose item failed; a failing batch rejects all', async () => {
    let fail = false;
    const commit = new GroupCommit<number, number>(
      (items) => {
        if (fail) throw new Error('batch');
        return items.map((n) => (n < 0 ? { ok: false, error: new Error(`bad ${n}`) } : ok(n)));
      },
      { maxBatch: 10 },
    );
    const outcomes = await Promise.allSettled([commit.submit(1), commit.submit(-1)]);
    expect(outcomes).toEqual([
      { status: 'fulfilled', value: 1 },
      { status: 'rejected', reason: new Error('bad -1') },
    ]);
    fail = true;
    const both = await Promise.allSettled([commit.submit(1), commit.submit(2)]);
    expect(both.map((o) => o.status)).toEqual(['rejected', 'rejected']);
    const rejected = jest.fn();
    const async = new GroupCommit<number, number>(() => Promise.reject(new Error('down')), {
      maxBatch: 10,
    });
    await async.submit(1).catch(rejected);
    expect(rejected).toHaveBeenCalledWith(new Error('down'));
  });

  it('runs the whole batch again when the runner asks, with what came meanwhile', async () => {
    const batches: number[][] = [];
    let busy = 2;
    const commit = new GroupCommit<number, number>(
      (items) => {
        batches.push(items);
        if (busy-- > 0) return { retryAfterMs: 5 };
        return items.map(ok);
      },
      { maxBatch: 10 },
    );
    const first = commit.submit(1);
    await new Promise((resolve) => setImmediate(resolve));
    const second = commit.submit(2);
    await new Promise((resolve) => setImmediate(resolve));
    expect(batches).toEqual([[1]]); // 2 waits for 1's retry instead of overtaking it
    expect(await Promise.all([first, second])).toEqual([1, 2]);
    expect(batches).toEqual([[1], [1, 2], [1, 2]]);
  });

  it('drains: resolves once everything submitted so far has settled', async () => {
    const settled: number[] = [];
    const commit = new GroupCommit<number, number>(
      async (items) => {
        await new Promise((resolve) => setTimeout(resolve, 3));
        return items.map(ok);
      },
      { maxBatch: 1 },
    );
    await commit.drain(); // nothing submitted
    for (const n of [1, 2, 3]) void commit.submit(n).then((v) => settled.push(v));
    await commit.drain();
    expect(settled).toEqual([1, 2, 3]);
  });
});
