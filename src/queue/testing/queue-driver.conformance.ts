import { randomUUID } from 'node:crypto';
// Imported, not global, so that the suite compiles without jest's global types.
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { DriverUnavailableError } from '../errors/driver-unavailable.error';
import { StaleDeliveryError } from '../errors/stale-delivery.error';
import type { MessageProcessor } from '../interfaces/message-processor.interface';
import type { ConsumerHandle, QueueDriver } from '../interfaces/queue-driver.interface';
import type { Delivery } from '../interfaces/queue-message.interface';
import type { SharedWrite } from '../interfaces/shared-write.interface';
import { WorkerPool } from '../worker-pool';

export interface ConformanceOptions {
  /**
   * Builds a driver whose leases last `leaseMs` (short, for the lease tests). Required when the
   * driver's capabilities include leases; the default factory should use a long lease so that
   * no other test can lose one on a slow machine.
   */
  shortLease?: { factory: () => Promise<QueueDriver>; leaseMs: number };
}

/** How long a test watches for something that must not happen. Longer only makes it stricter. */
const QUIET_MS = 300;
/** How long to wait for something that must happen; generous for a loaded 2-core machine. */
const WAIT_MS = 15_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until<T>(probe: () => T | Promise<T>, what: string, timeoutMs = WAIT_MS) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

/** Collects what a consumer receives and tracks how many it holds unsettled at most. */
class Recorder {
  readonly received: Delivery<unknown>[] = [];
  unsettled = 0;
  maxUnsettled = 0;
  handle?: ConsumerHandle;

  constructor(private readonly driver: QueueDriver) {}

  consume(queue: string, prefetch: number, onDelivery?: (d: Delivery<unknown>) => void): this {
    this.handle = this.driver.consume(
      queue,
      (delivery) => {
        this.received.push(delivery);
        this.unsettled += 1;
        this.maxUnsettled = Math.max(this.maxUnsettled, this.unsettled);
        onDelivery?.(delivery);
      },
      { prefetch },
    );
    return this;
  }

  async ack(delivery: Delivery<unknown>): Promise<void> {
    await this.driver.ack(delivery);
    this.unsettled -= 1;
  }

  /** Waits until `count` deliveries have arrived; answers the newest `count`-th one. */
  async waitFor(count: number): Promise<Delivery<unknown>> {
    await until(() => this.received.length >= count, `${count} deliveries`);
    return this.received[count - 1];
  }

  bodies(): unknown[] {
    return this.received.map((d) => d.body);
  }
}

/** A write that records what the driver did with it; it writes nothing anywhere. */
function recordingWrite() {
  const log: string[] = [];
  const write: SharedWrite = {
    commit: async () => {
      log.push('commit');
      return true;
    },
    committed: (applied) => log.push(`committed:${applied}`),
  };
  return { write, log };
}

/**
 * The behaviour every QueueDriver promises, as one jest suite, for any driver (a third-party
 * one included): call it at the top level of a spec file, with this folder (src/queue/testing)
 * as the import path.
 *
 *     import { describeQueueDriverConformance } from '<taskq>/src/queue/testing';
 *     describeQueueDriverConformance('mine', async () => new MyDriver(...), {
 *       shortLease: { factory: async () => new MyDriver({ leaseMs: 1000 }), leaseMs: 1000 },
 *     });
 *
 * `factory` answers a fresh driver on every call (the suite closes each one), all of them
 * sharing one store, as the processes of one deployment would; queues are random names, and
 * removing the broker-side leftovers is the spec file's job. What runs follows the driver's
 * capabilities and its optional methods: the lease tests need `shortLease` when
 * capabilities.leases is true, extendLeases, missingKeys and settleWith are checked where
 * present, and the documented fallback (WorkerPool) where not.
 *
 * Each test uses its own queue and closes every driver it built. No assertion depends on how
 * fast the machine is: waits poll with generous timeouts, and "nothing else arrives" checks
 * only grow stricter on a slow one.
 */
export function describeQueueDriverConformance(
  name: string,
  factory: () => Promise<QueueDriver>,
  options: ConformanceOptions = {},
): void {
  describe(`${name} queue driver conformance`, () => {
    const drivers: QueueDriver[] = [];
    const pools: WorkerPool[] = [];
    let driver: QueueDriver;
    let queue: string;

    const make = async (build = factory): Promise<QueueDriver> => {
      const created = await build();
      drivers.push(created);
      return created;
    };

    beforeEach(async () => {
      queue = `test-${randomUUID()}`;
      driver = await make();
    });

    afterEach(async () => {
      await Promise.all(pools.splice(0).map((p) => p.stop(0)));
      await Promise.all(drivers.splice(0).map((d) => d.close()));
    });

    describe('publish', () => {
      it('answers one distinct id per message, in order', async () => {
        const ids = await driver.publish(queue, [{ body: 'a' }, { body: 'b' }, { body: 'c' }]);
        expect(ids).toHaveLength(3);
        expect(new Set(ids).size).toBe(3);
        const recorder = new Recorder(driver).consume(queue, 10);
        await recorder.waitFor(3);
        expect(recorder.received.map((d) => [d.id, d.body])).toEqual([
          [ids[0], 'a'],
          [ids[1], 'b'],
          [ids[2], 'c'],
        ]);
      });

      it('delivers every field of the message', async () => {
        const body = { text: 'hello', n: 3, nested: { list: [1, 2] } };
        const [id] = await driver.publish(queue, [
          { body, priority: 4, headers: { 'x-trace': 't1' }, attempt: 2 },
        ]);
        const delivery = await new Recorder(driver).consume(queue, 1).waitFor(1);
        expect(delivery).toMatchObject({
          id,
          queue,
          body,
          headers: { 'x-trace': 't1' },
          priority: 4,
          attempt: 2,
          deliveryCount: 1,
        });
        expect(typeof delivery.receipt).toBe('string');
        expect(delivery.receipt).not.toBe('');
      });

      it('defaults priority 0, attempt 1 and empty headers', async () => {
        await driver.publish(queue, [{ body: 1 }]);
        const delivery = await new Recorder(driver).consume(queue, 1).waitFor(1);
        expect(delivery).toMatchObject({ priority: 0, attempt: 1, deliveryCount: 1, headers: {} });
      });
    });

    it('never lets a consumer hold more than prefetch unsettled deliveries', async () => {
      await driver.publish(
        queue,
        Array.from({ length: 20 }, (_, i) => ({ body: i })),
      );
      const recorder = new Recorder(driver).consume(queue, 5);
      await recorder.waitFor(5);
      await sleep(QUIET_MS);
      expect(recorder.received).toHaveLength(5);
      expect(await driver.stats(queue)).toMatchObject({ ready: 15, inFlight: 5 });

      await recorder.ack(recorder.received[0]);
      await recorder.waitFor(6);
      await sleep(QUIET_MS);
      expect(recorder.received).toHaveLength(6);
      expect(await driver.stats(queue)).toMatchObject({ ready: 14, inFlight: 5 });

      for (let next = 1; next < 20; next++) {
        await recorder.waitFor(Math.min(20, next + 5));
        await recorder.ack(recorder.received[next]);
      }
      expect(recorder.bodies()).toEqual(Array.from({ length: 20 }, (_, i) => i));
      expect(recorder.maxUnsettled).toBe(5);
      expect(await driver.stats(queue)).toMatchObject({ ready: 0, inFlight: 0 });
    });

    it('removes an acked message for good', async () => {
      await driver.publish(queue, [{ body: 'once' }]);
      const recorder = new Recorder(driver).consume(queue, 5);
      const delivery = await recorder.waitFor(1);
      expect(await driver.stats(queue)).toMatchObject({ ready: 0, inFlight: 1 });
      await recorder.ack(delivery);
      await sleep(QUIET_MS);
      expect(recorder.received).toHaveLength(1);
      expect(await driver.stats(queue)).toEqual({
        queue,
        ready: 0,
        inFlight: 0,
        delayed: 0,
        dead: 0,
        paused: false,
      });
    });

    it('redelivers a nacked message after its delay with attempt + 1', async () => {
      const delayMs = 400;
      const [id] = await driver.publish(queue, [{ body: 'retry me' }]);
      const recorder = new Recorder(driver).consume(queue, 1);
      const first = await recorder.waitFor(1);
      const nackedAt = Date.now();
      await driver.nack(first, { delayMs });
      expect(await driver.stats(queue)).toMatchObject({ inFlight: 0, delayed: 1 });
      const second = await recorder.waitFor(2);
      // Redelivery may come late on a slow machine, never early (1 ms of clock rounding aside).
      expect(Date.now() - nackedAt).toBeGreaterThanOrEqual(delayMs - 1);
      expect(second).toMatchObject({ id, body: 'retry me', attempt: 2, deliveryCount: 2 });
      expect(second.receipt).not.toBe(first.receipt);
    });

    it('redelivers a nacked message at once without a delay', async () => {
      await driver.publish(queue, [{ body: 'x' }]);
      const recorder = new Recorder(driver).consume(queue, 1);
      await driver.nack(await recorder.waitFor(1));
      expect(await recorder.waitFor(2)).toMatchObject({ attempt: 2, deliveryCount: 2 });
    });

    it('redelivers a released message with the same attempt', async () => {
      const [id] = await driver.publish(queue, [{ body: 'x', attempt: 3 }]);
      const recorder = new Recorder(driver).consume(queue, 1);
      await driver.release(await recorder.waitFor(1));
      expect(await recorder.waitFor(2)).toMatchObject({ id, attempt: 3, deliveryCount: 2 });
    });

    it('moves a dead-lettered message to the dead store, newest first', async () => {
      const ids = await driver.publish(queue, [
        { body: { n: 1 }, headers: { h: '1' } },
        { body: { n: 2 }, headers: { h: '2' }, attempt: 3 },
      ]);
      const recorder = new Recorder(driver).consume(queue, 1);
      await driver.deadLetter(await recorder.waitFor(1), 'first reason');
      await driver.deadLetter(await recorder.waitFor(2), 'second reason');
      await sleep(QUIET_MS);
      expect(recorder.received).toHaveLength(2);

      const dead = await driver.deadLetters(queue);
      expect(dead).toEqual([
        {
          id: ids[1],
          queue,
          body: { n: 2 },
          headers: { h: '2' },
          attempt: 3,
          reason: 'second reason',
          deadAt: expect.any(Date),
        },
        {
          id: ids[0],
          queue,
          body: { n: 1 },
          headers: { h: '1' },
          attempt: 1,
          reason: 'first reason',
          deadAt: expect.any(Date),
        },
      ]);
      expect((await driver.deadLetters(queue, 1)).map((d) => d.id)).toEqual([ids[1]]);
      expect(await driver.stats(queue)).toMatchObject({ ready: 0, inFlight: 0, dead: 2 });
      // Reading dead letters leaves them in place.
      expect(await driver.deadLetters(queue)).toHaveLength(2);
    });

    it('delivers higher priorities first and keeps FIFO within a priority', async () => {
      await driver.publish(queue, [
        { body: 'low-1', priority: 0 },
        { body: 'mid-1', priority: 5 },
        { body: 'low-2', priority: 0 },
      ]);
      await driver.publish(queue, [{ body: 'high-1', priority: 10 }]);
      await driver.publish(queue, [{ body: 'mid-2', priority: 5 }]);
      await driver.publish(queue, [{ body: 'low-3' }]);
      const recorder = new Recorder(driver).consume(queue, 1, (d) => void driver.ack(d));
      await recorder.waitFor(6);
      expect(recorder.bodies()).toEqual(['high-1', 'mid-1', 'mid-2', 'low-1', 'low-2', 'low-3']);
    });

    it('holds a delayed message back until its delay passes', async () => {
      const delayMs = 400;
      const publishedAt = Date.now();
      await driver.publish(queue, [{ body: 'later', delayMs }, { body: 'now' }]);
      const recorder = new Recorder(driver).consume(queue, 5);
      expect((await recorder.waitFor(1)).body).toBe('now');
      const later = await recorder.waitFor(2);
      expect(later.body).toBe('later');
      expect(Date.now() - publishedAt).toBeGreaterThanOrEqual(delayMs - 1);
      expect(await driver.stats(queue)).toMatchObject({ delayed: 0, inFlight: 2 });
    });

    it('counts a delayed message as delayed, not ready', async () => {
      await driver.publish(queue, [{ body: 'far', delayMs: 60_000 }, { body: 'near' }]);
      expect(await driver.stats(queue)).toMatchObject({ ready: 1, delayed: 1, inFlight: 0 });
    });

    describe('deduplication key', () => {
      it('drops a duplicate while the first message waits or is in flight', async () => {
        const [first, sameBatch] = await driver.publish(queue, [
          { body: 1, deduplicationKey: 'k' },
          { body: 2, deduplicationKey: 'k' },
        ]);
        expect(sameBatch).toBe(first);
        expect(await driver.publish(queue, [{ body: 3, deduplicationKey: 'k' }])).toEqual([first]);
        expect(await driver.stats(queue)).toMatchObject({ ready: 1 });

        const recorder = new Recorder(driver).consume(queue, 5);
        const delivery = await recorder.waitFor(1);
        expect(await driver.publish(queue, [{ body: 4, deduplicationKey: 'k' }])).toEqual([first]);
        await driver.nack(delivery);
        expect(await driver.publish(queue, [{ body: 5, deduplicationKey: 'k' }])).toEqual([first]);

        await recorder.ack(await recorder.waitFor(2));
        await sleep(QUIET_MS);
        expect(recorder.bodies()).toEqual([1, 1]);
      });

      it('accepts the key again once the message is acked or dead', async () => {
        const [first] = await driver.publish(queue, [{ body: 1, deduplicationKey: 'k' }]);
        const recorder = new Recorder(driver).consume(queue, 5);
        await driver.ack(await recorder.waitFor(1));
        const [second] = await driver.publish(queue, [{ body: 2, deduplicationKey: 'k' }]);
        expect(second).not.toBe(first);
        await driver.deadLetter(await recorder.waitFor(2), 'done');
        const [third] = await driver.publish(queue, [{ body: 3, deduplicationKey: 'k' }]);
        expect(third).not.toBe(second);
        expect((await recorder.waitFor(3)).body).toBe(3);
      });

      it('answers which keys have no live message, when it can tell', async () => {
        if (!driver.missingKeys) return; // optional: recovery then offers every key to publish
        await driver.publish(queue, [
          { body: 'acked', deduplicationKey: 'acked', priority: 9 },
          { body: 'held', deduplicationKey: 'held', priority: 5 },
          { body: 'waiting', deduplicationKey: 'waiting' },
          { body: 'later', deduplicationKey: 'later', delayMs: 60_000 },
        ]);
        const recorder = new Recorder(driver).consume(queue, 2);
        await recorder.waitFor(2);
        expect(recorder.bodies()).toEqual(['acked', 'held']);
        await recorder.ack(await recorder.waitFor(1));
        const keys = ['waiting', 'held', 'acked', 'later', 'gone'];
        expect((await driver.missingKeys(queue, keys)).sort()).toEqual(['acked', 'gone']);
        expect(await driver.missingKeys(`test-${randomUUID()}`, ['held'])).toEqual(['held']);
      });

      it('scopes the key to one queue', async () => {
        const other = `test-${randomUUID()}`;
        const [a] = await driver.publish(queue, [{ body: 1, deduplicationKey: 'k' }]);
        const [b] = await driver.publish(other, [{ body: 1, deduplicationKey: 'k' }]);
        expect(b).not.toBe(a);
      });
    });

    it('shares one queue between several consumers, each message once', async () => {
      const ids = await driver.publish(
        queue,
        Array.from({ length: 40 }, (_, i) => ({ body: i })),
      );
      const a = new Recorder(driver).consume(queue, 3, (d) => void driver.ack(d));
      const b = new Recorder(driver).consume(queue, 3, (d) => void driver.ack(d));
      await until(() => a.received.length + b.received.length >= 40, '40 deliveries');
      await sleep(QUIET_MS);
      const all = [...a.received, ...b.received].map((d) => d.id);
      expect(all.sort()).toEqual([...ids].sort());
      expect(a.received.length).toBeGreaterThan(0);
      expect(b.received.length).toBeGreaterThan(0);
    });

    it('keeps messages on other queues apart', async () => {
      const other = `test-${randomUUID()}`;
      await driver.publish(other, [{ body: 'elsewhere' }]);
      await driver.publish(queue, [{ body: 'here' }]);
      const recorder = new Recorder(driver).consume(queue, 5);
      await recorder.waitFor(1);
      await sleep(QUIET_MS);
      expect(recorder.bodies()).toEqual(['here']);
      expect(await driver.stats(other)).toMatchObject({ ready: 1 });
    });

    describe('pause and resume', () => {
      it('stops and restarts one consumer through its handle', async () => {
        const recorder = new Recorder(driver).consume(queue, 5);
        recorder.handle!.pause();
        await driver.publish(queue, [{ body: 1 }]);
        await sleep(QUIET_MS);
        expect(recorder.received).toHaveLength(0);
        recorder.handle!.resume();
        expect((await recorder.waitFor(1)).body).toBe(1);
      });

      it('stops and restarts every consumer of a queue with pauseQueue', async () => {
        await driver.pauseQueue(queue);
        expect(await driver.stats(queue)).toMatchObject({ paused: true });
        const recorder = new Recorder(driver).consume(queue, 5);
        await driver.publish(queue, [{ body: 1 }, { body: 2 }]);
        await sleep(QUIET_MS);
        expect(recorder.received).toHaveLength(0);
        expect(await driver.stats(queue)).toMatchObject({ ready: 2, paused: true });

        await driver.resumeQueue(queue);
        await recorder.waitFor(2);
        expect(await driver.stats(queue)).toMatchObject({ ready: 0, inFlight: 2, paused: false });
      });

      it('stops delivery for good once the handle is cancelled', async () => {
        const recorder = new Recorder(driver).consume(queue, 5);
        await driver.publish(queue, [{ body: 1 }]);
        const held = await recorder.waitFor(1);
        await recorder.handle!.cancel();
        await driver.publish(queue, [{ body: 2 }]);
        await sleep(QUIET_MS);
        expect(recorder.received).toHaveLength(1);
        await driver.ack(held);
        expect(await driver.stats(queue)).toMatchObject({ ready: 1, inFlight: 0 });
      });
    });

    it('counts ready, in-flight, delayed and dead messages', async () => {
      expect(await driver.stats(queue)).toEqual({
        queue,
        ready: 0,
        inFlight: 0,
        delayed: 0,
        dead: 0,
        paused: false,
      });
      await driver.publish(queue, [
        { body: 1 },
        { body: 2 },
        { body: 3 },
        { body: 4, delayMs: 60_000 },
      ]);
      expect(await driver.stats(queue)).toMatchObject({ ready: 3, inFlight: 0, delayed: 1 });
      const recorder = new Recorder(driver).consume(queue, 2);
      await recorder.waitFor(2);
      expect(await driver.stats(queue)).toMatchObject({ ready: 1, inFlight: 2, delayed: 1 });
      await driver.deadLetter(recorder.received[0], 'test');
      await recorder.waitFor(3);
      expect(await driver.stats(queue)).toEqual({
        queue,
        ready: 0,
        inFlight: 2,
        delayed: 1,
        dead: 1,
        paused: false,
      });
    });

    it.each([
      ['ack', 'ack'],
      ['ack', 'nack'],
      ['nack', 'release'],
      ['release', 'ack'],
      ['deadLetter', 'ack'],
      ['ack', 'deadLetter'],
    ] as const)(
      'rejects a %s followed by a %s of the same delivery as stale',
      async (first, second) => {
        await driver.publish(queue, [{ body: 1 }]);
        const recorder = new Recorder(driver).consume(queue, 1);
        const delivery = await recorder.waitFor(1);
        const settle = (how: typeof first) =>
          how === 'deadLetter' ? driver.deadLetter(delivery, 'test') : driver[how](delivery);
        await settle(first);
        await expect(settle(second)).rejects.toBeInstanceOf(StaleDeliveryError);
      },
    );

    it('settles two concurrent acks of one delivery once', async () => {
      await driver.publish(queue, [{ body: 1 }, { body: 2 }]);
      const recorder = new Recorder(driver).consume(queue, 1);
      const delivery = await recorder.waitFor(1);
      const results = await Promise.allSettled([driver.ack(delivery), driver.ack(delivery)]);
      expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
      // The freed slot is counted once: the second message arrives and nothing more.
      await recorder.waitFor(2);
      expect(await driver.stats(queue)).toMatchObject({ ready: 0, inFlight: 1 });
    });

    describe('close', () => {
      it('closes with deliveries in flight and refuses to settle them afterwards', async () => {
        await driver.publish(queue, [{ body: 1 }, { body: 2 }, { body: 3 }]);
        const recorder = new Recorder(driver).consume(queue, 2);
        const [first, second] = [await recorder.waitFor(1), await recorder.waitFor(2)];
        const closing = driver.close();
        expect(driver.close()).toBe(closing);
        await closing;
        await sleep(QUIET_MS);
        expect(recorder.received).toHaveLength(2);
        await expect(driver.ack(first)).rejects.toBeInstanceOf(DriverUnavailableError);
        await expect(driver.nack(second)).rejects.toBeInstanceOf(DriverUnavailableError);
      });

      it('rejects publish and ping after close', async () => {
        await expect(driver.ping()).resolves.toBeUndefined();
        await driver.close();
        await expect(driver.publish(queue, [{ body: 1 }])).rejects.toBeInstanceOf(
          DriverUnavailableError,
        );
        await expect(driver.ping()).rejects.toBeInstanceOf(DriverUnavailableError);
      });
    });

    describe('shared writes', () => {
      describe('through the worker pool', () => {
        const start = (processor: MessageProcessor) => {
          const quiet = { warn: () => undefined, error: () => undefined };
          const pool = new WorkerPool(
            driver,
            queue,
            processor,
            { concurrency: 1, prefetch: 1, maxAttempts: 2, backoff: { baseMs: 0, maxMs: 0 } },
            quiet,
          );
          pools.push(pool);
          pool.start();
          return pool;
        };

        /** A write that notes, when committed, how many deliveries were still unsettled. */
        const observedWrite = () => {
          const recorded = recordingWrite();
          const inFlightAtCommit: number[] = [];
          const write: SharedWrite = {
            ...recorded.write,
            commit: async () => {
              inFlightAtCommit.push((await driver.stats(queue)).inFlight);
              return recorded.write.commit();
            },
          };
          return { write, log: recorded.log, inFlightAtCommit };
        };

        const drained = () =>
          until(async () => {
            const { ready, inFlight, delayed } = await driver.stats(queue);
            return ready + inFlight + delayed === 0;
          }, 'the queue to drain');

        it('commits the outcome first, then acks', async () => {
          const { write, log, inFlightAtCommit } = observedWrite();
          const pool = start({ process: async () => write });
          await driver.publish(queue, [{ body: 'x' }]);
          await until(() => pool.stats().succeeded === 1, 'the outcome');
          await drained();
          expect(log).toEqual(['commit', 'committed:true']);
          expect(inFlightAtCommit).toEqual([1]);
          expect(await driver.stats(queue)).toMatchObject({ dead: 0 });
        });

        it('commits a failure first, then nacks it, and the last one before its dead-letter', async () => {
          const writes = [observedWrite(), observedWrite()];
          const decisions: string[] = [];
          start({
            process: () => Promise.reject(new Error('boom')),
            onFailure: async (delivery, _error, decision) => {
              decisions.push(`${delivery.attempt}:${decision.kind}`);
              return writes[delivery.attempt - 1].write;
            },
          });
          const [id] = await driver.publish(queue, [{ body: 'x' }]);
          await until(async () => (await driver.stats(queue)).dead === 1, 'the dead letter');
          await drained();
          expect(decisions).toEqual(['1:retry', '2:dead']);
          for (const { log, inFlightAtCommit } of writes) {
            expect(log).toEqual(['commit', 'committed:true']);
            expect(inFlightAtCommit).toEqual([1]);
          }
          expect(await driver.deadLetters(queue)).toEqual([
            expect.objectContaining({ id, attempt: 2, reason: expect.stringContaining('boom') }),
          ]);
        });
      });
    });

    const leases = options.shortLease;
    const describeLeases = leases ? describe : describe.skip;
    describeLeases('leases', () => {
      if (!leases) return;
      const { leaseMs } = leases;

      beforeEach(async () => {
        driver = await make(leases.factory);
        expect(driver.capabilities.leases).toBe(true);
      });

      it('redelivers a message whose lease expired, with deliveryCount + 1', async () => {
        const [id] = await driver.publish(queue, [{ body: 'slow' }]);
        const recorder = new Recorder(driver).consume(queue, 2);
        const first = await recorder.waitFor(1);
        const second = await recorder.waitFor(2);
        expect(second).toMatchObject({ id, attempt: 1, deliveryCount: 2 });
        expect(second.receipt).not.toBe(first.receipt);
      });

      it('keeps a delivery whose lease is extended', async () => {
        await driver.publish(queue, [{ body: 'long' }]);
        const recorder = new Recorder(driver).consume(queue, 2);
        const delivery = await recorder.waitFor(1);
        const keepUntil = Date.now() + leaseMs * 3;
        while (Date.now() < keepUntil) {
          await driver.extendLease(delivery, leaseMs * 4);
          await sleep(leaseMs / 4);
        }
        expect(recorder.received).toHaveLength(1);
        await driver.ack(delivery);
        expect(await driver.stats(queue)).toMatchObject({ ready: 0, inFlight: 0 });
      });

      it('extends many leases in one call and answers the ones it lost', async () => {
        if (!driver.extendLeases) return; // optional: the worker pool then extends one by one
        expect(await driver.extendLeases([], leaseMs)).toEqual([]);
        await driver.publish(queue, [{ body: 'contested' }]);
        const recorder = new Recorder(driver).consume(queue, 3);
        const stale = await recorder.waitFor(1);
        const current = await recorder.waitFor(2);
        expect(await driver.extendLeases([stale, current], leaseMs * 4)).toEqual([stale]);
        await driver.publish(queue, [{ body: 'other' }]);
        const other = await recorder.waitFor(3);
        const keepUntil = Date.now() + leaseMs * 3;
        while (Date.now() < keepUntil) {
          const lost = await driver.extendLeases([stale, other, current], leaseMs * 4);
          expect(lost).toEqual([stale]);
          await sleep(leaseMs / 4);
        }
        expect(recorder.received).toHaveLength(3);
        await driver.ack(current);
        await driver.ack(other);
        expect(await driver.stats(queue)).toMatchObject({ ready: 0, inFlight: 0 });
      });

      it('fences the old receipt once another delivery took the message over', async () => {
        await driver.publish(queue, [{ body: 'contested' }]);
        const recorder = new Recorder(driver).consume(queue, 2);
        const stale = await recorder.waitFor(1);
        const current = await recorder.waitFor(2);
        await expect(driver.ack(stale)).rejects.toBeInstanceOf(StaleDeliveryError);
        await expect(driver.nack(stale)).rejects.toBeInstanceOf(StaleDeliveryError);
        await expect(driver.release(stale)).rejects.toBeInstanceOf(StaleDeliveryError);
        await expect(driver.deadLetter(stale, 'x')).rejects.toBeInstanceOf(StaleDeliveryError);
        await expect(driver.extendLease(stale, leaseMs)).rejects.toBeInstanceOf(StaleDeliveryError);
        await driver.ack(current);
        expect(await driver.stats(queue)).toMatchObject({ ready: 0, inFlight: 0, dead: 0 });
      });
    });
  });
}
