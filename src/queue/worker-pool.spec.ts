import { deferred, waitFor } from '../../test/helpers/wait-for';
import { MemoryQueueDriver } from './drivers/memory/memory.driver';
import { NonRetryableError } from './errors/non-retryable.error';
import type { FailureDecision, MessageProcessor } from './interfaces/message-processor.interface';
import type { Delivery } from './interfaces/queue-message.interface';
import type { SharedWrite } from './interfaces/shared-write.interface';
import { MAX_ATTEMPTS_HEADER, WorkerPool, type WorkerPoolOptions } from './worker-pool';

const QUEUE = 'jobs';
const silent = { warn: jest.fn(), error: jest.fn() };

/** A memory driver that also records how many deliveries each consumer holds unsettled. */
class CountingDriver extends MemoryQueueDriver {
  unsettled = 0;
  maxUnsettled = 0;
  settles: string[] = [];

  override consume<T>(
    queue: string,
    onDelivery: (d: Delivery<T>) => void,
    options: { prefetch: number },
  ) {
    return super.consume<T>(
      queue,
      (d) => {
        this.unsettled += 1;
        this.maxUnsettled = Math.max(this.maxUnsettled, this.unsettled);
        onDelivery(d);
      },
      options,
    );
  }
  private track(kind: string) {
    this.unsettled -= 1;
    this.settles.push(kind);
  }
  override async ack(d: Delivery) {
    await super.ack(d);
    this.track('ack');
  }
  override async nack(d: Delivery, o?: { delayMs?: number }) {
    await super.nack(d, o);
    this.track(`nack:${o?.delayMs}`);
  }
  override async release(d: Delivery) {
    await super.release(d);
    this.track('release');
  }
  override async deadLetter(d: Delivery, reason: string) {
    await super.deadLetter(d, reason);
    this.track('dead');
  }
}

function setup(options: Partial<WorkerPoolOptions>, processor: MessageProcessor<number>) {
  const driver = new CountingDriver();
  const sut = new WorkerPool<number>(
    driver,
    QUEUE,
    processor,
    {
      concurrency: 1,
      prefetch: 10,
      maxAttempts: 3,
      backoff: { baseMs: 10, maxMs: 1000 },
      ...options,
    },
    silent,
    () => 0.5,
  );
  const publish = (n: number, headers?: Record<string, string>) =>
    driver.publish(
      QUEUE,
      Array.from({ length: n }, (_, i) => ({ body: i, headers })),
    );
  return { sut, driver, publish };
}

/**
 * A pool whose single worker stays busy until `gate` resolves, on a memory driver that claims to
 * lease, so the pool renews what it holds every leaseMs/2.
 */
function leasingSetup(
  options: { prefetch: number; leaseMs: number },
  logger: { warn: (m: string) => void; error: (m: string) => void } = silent,
) {
  const gate = deferred();
  const driver = new CountingDriver();
  Object.defineProperty(driver, 'capabilities', { value: { durable: false, leases: true } });
  const sut = new WorkerPool<number>(
    driver,
    QUEUE,
    { process: () => gate.promise },
    { concurrency: 1, maxAttempts: 1, backoff: { baseMs: 1, maxMs: 1 }, ...options },
    logger,
  );
  return { sut, driver, gate };
}

describe(WorkerPool.name, () => {
  let toClose: { sut: WorkerPool<number>; driver: MemoryQueueDriver }[] = [];
  afterEach(async () => {
    for (const { sut, driver } of toClose) {
      await sut.stop(0);
      await driver.close();
    }
    toClose = [];
  });
  const track = <T extends { sut: WorkerPool<number>; driver: MemoryQueueDriver }>(s: T): T => {
    toClose.push(s);
    return s;
  };

  it('never runs more handlers than its concurrency and acks each on return', async () => {
    // Arrange
    let running = 0;
    let peak = 0;
    const { sut, driver, publish } = track(
      setup(
        { concurrency: 4, prefetch: 8 },
        {
          process: async () => {
            running += 1;
            peak = Math.max(peak, running);
            await new Promise((r) => setTimeout(r, 2));
            running -= 1;
          },
        },
      ),
    );
    await publish(50);
    // Act
    sut.start();
    // Assert
    await waitFor(() => sut.stats().succeeded === 50, { what: '50 processed' });
    await waitFor(() => driver.settles.length === 50);
    expect(peak).toBe(4);
    expect(driver.settles.every((s) => s === 'ack')).toBe(true);
    expect(driver.maxUnsettled).toBeLessThanOrEqual(8);
  });

  it('holds at most prefetch deliveries and asks for no more while workers are busy (backpressure)', async () => {
    // Arrange: 2 workers blocked, prefetch 5 → 2 running + 3 buffered, 5 waiting at the driver.
    const gate = deferred();
    const { sut, driver, publish } = track(
      setup({ concurrency: 2, prefetch: 5 }, { process: () => gate.promise }),
    );
    await publish(10);
    // Act
    sut.start();
    await waitFor(() => driver.unsettled === 5, { what: '5 deliveries' });
    await new Promise((r) => setTimeout(r, 50));
    // Assert
    expect(driver.unsettled).toBe(5);
    expect(sut.stats()).toMatchObject({ busy: 2, buffered: 3 });
    expect((await driver.stats(QUEUE)).ready).toBe(5);
    gate.resolve();
    await waitFor(() => sut.stats().succeeded === 10);
    expect(driver.maxUnsettled).toBe(5);
  });

  describe('outcome handed back as a settle effect', () => {
    const effect = (commit: () => Promise<boolean>, log: string[]): SharedWrite => ({
      commit: () => {
        log.push('commit');
        return commit();
      },
      committed: (applied) => log.push(`committed:${applied}`),
    });

    it('commits the outcome before the ack, and frees the worker meanwhile', async () => {
      // Arrange: the first outcome's commit hangs until released.
      const log: string[] = [];
      const slow = deferred();
      let calls = 0;
      const { sut, driver, publish } = track(
        setup(
          { concurrency: 1, prefetch: 2 },
          {
            process: () => {
              calls += 1;
              const first = calls === 1;
              return Promise.resolve(
                effect(() => (first ? slow.promise.then(() => true) : Promise.resolve(true)), log),
              );
            },
          },
        ),
      );
      await publish(2);
      // Act
      sut.start();
      // Assert: the one worker took the second delivery while the first outcome was committing.
      await waitFor(() => calls === 2, { what: 'the second delivery processed' });
      await waitFor(() => driver.settles.length === 1);
      expect(sut.stats().succeeded).toBe(1);
      slow.resolve();
      await waitFor(() => sut.stats().succeeded === 2);
      await waitFor(() => driver.settles.length === 2);
      expect(log).toEqual(['commit', 'commit', 'committed:true', 'committed:true']);
      expect(driver.settles).toEqual(['ack', 'ack']);
    });

    it('commits a failure handed back by onFailure before the nack, then the dead-letter', async () => {
      const log: string[] = [];
      const { sut, driver, publish } = track(
        setup(
          { maxAttempts: 2 },
          {
            process: () => Promise.reject(new Error('boom')),
            onFailure: (_d, _e, decision) =>
              Promise.resolve(effect(() => Promise.resolve(decision.kind !== undefined), log)),
          },
        ),
      );
      await publish(1);
      sut.start();
      await waitFor(() => driver.settles.length === 2, { what: 'a nack and a dead-letter' });
      expect(driver.settles).toEqual(['nack:8', 'dead']); // backoff as in the retry test below
      expect(log).toEqual(['commit', 'committed:true', 'commit', 'committed:true']);
      expect(sut.stats()).toMatchObject({ succeeded: 0, retried: 1, deadLettered: 1 });
    });

    it('releases, never acks, a delivery whose outcome could not be recorded', async () => {
      const log: string[] = [];
      const { sut, driver, publish } = track(
        setup(
          {},
          {
            process: () =>
              Promise.resolve(effect(() => Promise.reject(new Error('disk full')), log)),
          },
        ),
      );
      await publish(1);
      sut.start();
      await waitFor(() => driver.settles.length >= 1);
      expect(driver.settles[0]).toBe('release');
      expect(log[0]).toBe('commit');
      expect(log).not.toContain('committed:true');
      expect(sut.stats().succeeded).toBe(0);
    });
  });

  it('nacks a throw with exponential backoff and dead-letters after maxAttempts', async () => {
    // Arrange
    const decisions: FailureDecision[] = [];
    const { sut, driver, publish } = track(
      setup(
        { maxAttempts: 3 },
        {
          process: () => Promise.reject(new Error('boom')),
          onFailure: async (_d, _e, decision) => {
            decisions.push(decision);
          },
        },
      ),
    );
    await publish(1);
    // Act
    sut.start();
    // Assert: delays 10*2^0 and 10*2^1, each halved plus half jitter at random()=0.5.
    await waitFor(() => sut.stats().deadLettered === 1, { what: 'dead letter' });
    await waitFor(() => driver.settles.length === 3);
    expect(decisions).toEqual([
      { kind: 'retry', delayMs: 8, nextAttempt: 2 },
      { kind: 'retry', delayMs: 15, nextAttempt: 3 },
      { kind: 'dead', reason: 'attempts exhausted (3/3): boom' },
    ]);
    expect(driver.settles).toEqual(['nack:8', 'nack:15', 'dead']);
    const [dead] = await driver.deadLetters(QUEUE);
    expect(dead).toMatchObject({ body: 0, attempt: 3, reason: 'attempts exhausted (3/3): boom' });
  });

  it('honours a per-message attempt bound from its header', async () => {
    const { sut, driver, publish } = track(
      setup({ maxAttempts: 5 }, { process: () => Promise.reject(new Error('no')) }),
    );
    await publish(1, { [MAX_ATTEMPTS_HEADER]: '1' });
    sut.start();
    await waitFor(() => driver.settles.length === 1);
    expect(driver.settles).toEqual(['dead']);
  });

  it('skips the remaining attempts on NonRetryableError', async () => {
    const { sut, driver, publish } = track(
      setup(
        { maxAttempts: 5 },
        { process: () => Promise.reject(new NonRetryableError('bad input')) },
      ),
    );
    await publish(1);
    sut.start();
    await waitFor(() => driver.settles.length === 1);
    expect(driver.settles).toEqual(['dead']);
    expect((await driver.deadLetters(QUEUE))[0].reason).toBe('non-retryable: bad input');
  });

  it('records the failure before settling, and releases the message if recording fails', async () => {
    // Arrange
    const order: string[] = [];
    let failRecording = true;
    const { sut, driver, publish } = track(
      setup(
        { maxAttempts: 1 },
        {
          process: () => Promise.reject(new Error('x')),
          onFailure: async () => {
            order.push(`record:${driver.settles.length}`);
            if (failRecording) {
              failRecording = false;
              throw new Error('database down');
            }
          },
        },
      ),
    );
    await publish(1);
    // Act
    sut.start();
    // Assert: first recording failed → released (same attempt) → second try dead-letters.
    await waitFor(() => driver.settles.length === 2);
    expect(driver.settles).toEqual(['release', 'dead']);
    expect(order).toEqual(['record:0', 'record:1']);
  });

  it('spreads one queue over several consumers', async () => {
    const seen = { a: 0, b: 0 };
    const a = track(setup({ prefetch: 2 }, { process: async () => void (seen.a += 1) }));
    const b = new WorkerPool<number>(
      a.driver,
      QUEUE,
      { process: async () => void (seen.b += 1) },
      { concurrency: 1, prefetch: 2, maxAttempts: 1, backoff: { baseMs: 1, maxMs: 1 } },
      silent,
    );
    await a.publish(40);
    a.sut.start();
    b.start();
    await waitFor(() => seen.a + seen.b === 40);
    await b.stop(0);
    expect(seen.a).toBeGreaterThan(0);
    expect(seen.b).toBeGreaterThan(0);
  });

  it('stop() lets running handlers finish, hands buffered deliveries back and takes no more', async () => {
    // Arrange
    const gate = deferred();
    const started: number[] = [];
    const { sut, driver, publish } = track(
      setup(
        { concurrency: 1, prefetch: 3 },
        {
          process: async (d) => {
            started.push(d.body);
            await gate.promise;
          },
        },
      ),
    );
    await publish(5);
    sut.start();
    await waitFor(() => started.length === 1);
    // Act
    const stopping = sut.stop(5000);
    let stopped = false;
    void stopping.then(() => (stopped = true));
    await new Promise((r) => setTimeout(r, 30));
    // Assert: still waiting for the running handler.
    expect(stopped).toBe(false);
    gate.resolve();
    await stopping;
    expect(started).toEqual([0]);
    expect(driver.settles.sort()).toEqual(['ack', 'release', 'release']);
    expect((await driver.stats(QUEUE)).ready).toBe(4);
  });

  it('stop() aborts handlers still running at the timeout and leaves them unsettled', async () => {
    // Arrange
    let signal: AbortSignal | undefined;
    const { sut, driver, publish } = track(
      setup(
        {},
        {
          process: (_d, s) => {
            signal = s;
            return new Promise((_, reject) =>
              s.addEventListener('abort', () => reject(s.reason as Error)),
            );
          },
        },
      ),
    );
    await publish(1);
    sut.start();
    await waitFor(() => signal);
    // Act
    await sut.stop(20);
    // Assert
    expect(signal!.aborted).toBe(true);
    expect(driver.settles).toEqual([]);
    expect((await driver.stats(QUEUE)).inFlight).toBe(1);
  });

  it('counts a settle the driver refuses as stale instead of failing', async () => {
    const { sut, driver, publish } = track(
      setup(
        {},
        {
          process: async (d) => {
            await driver.ack(d); // someone else settled it first
          },
        },
      ),
    );
    await publish(1);
    sut.start();
    await waitFor(() => sut.stats().staleSettles === 1);
    expect(sut.stats().succeeded).toBe(1);
  });

  it('extends the lease of every delivery it holds, running or buffered, on lease-based drivers', async () => {
    // Arrange: a memory driver that claims to lease, recording extensions.
    const { sut, driver, gate } = track(leasingSetup({ prefetch: 2, leaseMs: 40 }));
    const extended: string[] = [];
    driver.extendLease = async (d: Delivery, ms: number) => void extended.push(`${d.id}:${ms}`);
    const ids = await driver.publish(QUEUE, [{ body: 1 }, { body: 2 }]);
    // Act
    sut.start();
    // Assert: both held deliveries (one running, one buffered) are renewed for the full lease.
    await waitFor(() => ids.every((id) => extended.includes(`${id}:40`)), { what: 'both renewed' });
    gate.resolve();
    await waitFor(() => sut.stats().succeeded === 2);
    await sut.stop(0);
    const after = extended.length;
    await new Promise((r) => setTimeout(r, 100));
    expect(extended.length).toBe(after);
  });

  it('renews every held lease in one extendLeases call per interval where the driver has it', async () => {
    // Arrange: a leasing memory driver with the batch call; the second message's lease is lost.
    const logger = { warn: jest.fn(), error: jest.fn() };
    const { sut, driver, gate } = track(leasingSetup({ prefetch: 2, leaseMs: 40 }, logger));
    const single = jest.fn(() => Promise.resolve());
    driver.extendLease = single;
    const calls: { ids: string[]; ms: number }[] = [];
    let lostId = '';
    Object.assign(driver, {
      extendLeases: async (deliveries: Delivery[], ms: number) => {
        calls.push({ ids: deliveries.map((d) => d.id).sort(), ms });
        return deliveries.filter((d) => d.id === lostId);
      },
    });
    const ids = await driver.publish(QUEUE, [{ body: 1 }, { body: 2 }]);
    lostId = ids[1];
    // Act
    sut.start();
    await waitFor(() => calls.some((c) => c.ids.length === 2), { what: 'a batch renewal' });
    // Assert: one call carries both held deliveries for the full lease; none went singly.
    expect(calls.find((c) => c.ids.length === 2)).toEqual({ ids: [...ids].sort(), ms: 40 });
    expect(single).not.toHaveBeenCalled();
    // A lost lease is reported and changes nothing else: the handlers still finish.
    await waitFor(() => logger.warn.mock.calls.length > 0);
    expect(logger.warn).toHaveBeenCalledWith(
      expect.stringMatching(new RegExp(`lease of message ${ids[1]} not extended: .*no longer`)),
    );
    gate.resolve();
    await waitFor(() => sut.stats().succeeded === 2);
    await sut.stop(0);
    const after = calls.length;
    await new Promise((r) => setTimeout(r, 100));
    expect(calls.length).toBe(after);
  });

  it('does not start a renewal while the previous one is still in flight', async () => {
    // Arrange: the first batch renewal hangs.
    const renewal = deferred();
    const { sut, driver, gate } = track(leasingSetup({ prefetch: 1, leaseMs: 20 }));
    let calls = 0;
    Object.assign(driver, {
      extendLeases: async () => {
        calls += 1;
        await renewal.promise;
        return [];
      },
    });
    await driver.publish(QUEUE, [{ body: 1 }]);
    // Act
    sut.start();
    await waitFor(() => calls === 1);
    await new Promise((r) => setTimeout(r, 100));
    // Assert: five intervals passed, one call made; the next comes once it settled.
    expect(calls).toBe(1);
    renewal.resolve();
    await waitFor(() => calls > 1);
    gate.resolve();
  });

  it('runs buffered deliveries by priority, FIFO within one priority', async () => {
    // Arrange: one worker held, so the rest wait in the pool's buffer.
    const gate = deferred();
    const order: number[] = [];
    const { sut, driver } = track(
      setup(
        { concurrency: 1, prefetch: 10 },
        {
          process: async (d) => {
            if (d.body === 0) await gate.promise;
            order.push(d.body);
          },
        },
      ),
    );
    sut.start();
    await driver.publish(QUEUE, [{ body: 0 }]);
    await waitFor(() => sut.stats().busy === 1);
    for (const [body, priority] of [
      [1, 0],
      [2, 5],
      [3, 9],
      [4, 5],
      [5, 0],
    ]) {
      await driver.publish(QUEUE, [{ body, priority }]);
      await waitFor(() => sut.stats().buffered === body);
    }
    // Act
    gate.resolve();
    // Assert
    await waitFor(() => order.length === 6);
    expect(order).toEqual([0, 3, 2, 4, 1, 5]);
  });
});
