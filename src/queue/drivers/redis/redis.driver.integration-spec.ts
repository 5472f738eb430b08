import { randomUUID } from 'node:crypto';
import Redis from 'ioredis';
import { describeWithService, REDIS_SERVICE } from '../../../../test/helpers/service-available';
import { waitFor } from '../../../../test/helpers/wait-for';
import { DriverUnavailableError } from '../../errors/driver-unavailable.error';
import { StaleDeliveryError } from '../../errors/stale-delivery.error';
import type { ConsumerHandle } from '../../interfaces/queue-driver.interface';
import type { Delivery } from '../../interfaces/queue-message.interface';
import { RedisEvictionPolicyError } from './redis-eviction-policy.error';
import { RedisQueueDriver, type RedisDriverOptions } from './redis.driver';

// The local Redis reports maxmemory-policy noeviction out of the box, so no CONFIG SET is needed.
describeWithService(REDIS_SERVICE, RedisQueueDriver.name, () => {
  let admin: Redis;
  let prefix: string;
  const drivers: RedisQueueDriver[] = [];
  const handles: ConsumerHandle[] = [];
  const queue = 'jobs';

  function makeDriver(options: RedisDriverOptions = {}): RedisQueueDriver {
    // The shared test Redis runs without persistence: allowVolatile accepts it.
    const driver = new RedisQueueDriver({
      keyPrefix: prefix,
      blockMs: 200,
      allowVolatile: true,
      ...options,
    });
    drivers.push(driver);
    return driver;
  }

  /** Collects deliveries; settling is up to the test. */
  function collect(driver: RedisQueueDriver, prefetch = 10, name = queue): Delivery[] {
    const got: Delivery[] = [];
    handles.push(driver.consume(name, (d) => got.push(d), { prefetch }));
    return got;
  }

  beforeAll(() => {
    admin = new Redis('redis://127.0.0.1:6379');
  });

  beforeEach(() => {
    prefix = `taskq-test-${randomUUID()}`;
  });

  afterEach(async () => {
    await Promise.all(handles.splice(0).map((h) => h.cancel()));
    await Promise.all(drivers.splice(0).map((d) => d.close()));
    const keys = await admin.keys(`${prefix}:*`);
    if (keys.length > 0) await admin.del(...keys);
  });

  afterAll(async () => {
    await admin.quit();
  });

  it('delivers higher priorities first and keeps FIFO within one priority', async () => {
    const sut = makeDriver();
    await sut.publish(queue, [
      { body: 'low-1', priority: 0 },
      { body: 'high', priority: 5 },
      { body: 'low-2', priority: 0 },
      { body: 'neg', priority: -2 },
      { body: 'mid', priority: 2 },
    ]);
    const got = collect(sut);

    await waitFor(() => got.length === 5);
    expect(got.map((d) => d.body)).toEqual(['high', 'mid', 'low-1', 'low-2', 'neg']);
    expect(got.map((d) => d.priority)).toEqual([5, 2, 0, 0, -2]);
  });

  it('nack returns the message with attempt + 1 after its delay; release keeps the attempt', async () => {
    const sut = makeDriver();
    await sut.publish(queue, [{ body: 'x' }]);
    const got = collect(sut);
    await waitFor(() => got.length === 1);

    await sut.nack(got[0], { delayMs: 200 });
    expect(await sut.stats(queue)).toMatchObject({ inFlight: 0, delayed: 1 });
    await waitFor(() => got.length === 2);
    expect(got[1]).toMatchObject({ id: got[0].id, attempt: 2, deliveryCount: 2 });

    await sut.release(got[1]);
    await waitFor(() => got.length === 3);
    expect(got[2]).toMatchObject({ id: got[0].id, attempt: 2, deliveryCount: 3 });
    await expect(sut.nack(got[1])).rejects.toBeInstanceOf(StaleDeliveryError);
  });

  it('hands an expired lease to another consumer and refuses the old holder (fencing)', async () => {
    const first = makeDriver({ leaseMs: 300 });
    const second = makeDriver({ leaseMs: 300 });
    await first.publish(queue, [{ body: 'x' }]);
    // Prefetch 1 keeps the first consumer from reclaiming its own expired delivery.
    const gotFirst = collect(first, 1);
    await waitFor(() => gotFirst.length === 1);
    const gotSecond = collect(second);

    await waitFor(() => gotSecond.length === 1, { timeoutMs: 15_000 });
    expect(gotSecond[0]).toMatchObject({ id: gotFirst[0].id, attempt: 1, deliveryCount: 2 });
    await expect(first.extendLease(gotFirst[0], 1000)).rejects.toBeInstanceOf(StaleDeliveryError);
    await expect(first.ack(gotFirst[0])).rejects.toBeInstanceOf(StaleDeliveryError);
    await second.extendLease(gotSecond[0], 1000);
    await second.ack(gotSecond[0]);
    expect(await second.stats(queue)).toMatchObject({ ready: 0, inFlight: 0 });
  }, 60_000);

  it('resumes consuming by itself when the server drops its connections, losing nothing', async () => {
    // Acks lost with a killed connection come back once their lease expires.
    const sut = makeDriver({ leaseMs: 2000 });
    const total = 300;
    const seen = new Set<string>();
    handles.push(
      sut.consume(
        queue,
        (d) => {
          seen.add(d.body as string);
          // Settles fail while the connection is down; the lease brings those messages back.
          sut.ack(d).catch(() => undefined);
        },
        { prefetch: 8 },
      ),
    );
    const killDriverConnections = async (): Promise<number> => {
      const list = (await admin.client('LIST')) as string;
      const ids = list
        .split('\n')
        .filter((line) => line.includes(`name=${prefix}:`))
        .map((line) => /\bid=(\d+)/.exec(line)?.[1])
        .filter((id): id is string => id !== undefined);
      for (const id of ids) await admin.client('KILL', 'ID', id);
      return ids.length;
    };

    await sut.publish(
      queue,
      Array.from({ length: total / 2 }, (_, i) => ({ body: `m${i}` })),
    );
    await waitFor(() => seen.size > 0);
    expect(await killDriverConnections()).toBeGreaterThanOrEqual(2);
    await sut.publish(
      queue,
      Array.from({ length: total / 2 }, (_, i) => ({ body: `m${i + total / 2}` })),
    );
    await waitFor(() => seen.size >= total / 2 + 10, { timeoutMs: 20_000 });
    await killDriverConnections();

    await waitFor(() => seen.size === total, { timeoutMs: 30_000, what: 'every message' });
    await waitFor(
      async () => {
        const s = await sut.stats(queue);
        return s.ready === 0 && s.inFlight === 0;
      },
      { timeoutMs: 30_000, what: 'an empty queue' },
    );
  }, 60_000);

  it("takes over a consumer's deliveries once its heartbeat key expires, long before the lease", async () => {
    const livenessMs = 600;
    const a = makeDriver({ livenessMs, leaseMs: 60_000 });
    const b = makeDriver({ livenessMs, leaseMs: 60_000 });
    await a.publish(queue, [{ body: 'held' }]);
    const gotA = collect(a);
    await waitFor(() => gotA.length === 1);
    // A's process "dies": its consumer stops fetching and nothing renews its heartbeat.
    await handles.splice(0)[0].cancel();
    for (const timer of (a as unknown as { timers: NodeJS.Timeout[] }).timers) clearInterval(timer);

    const gotB = collect(b);
    await waitFor(() => gotB.length === 1, { what: 'the takeover' });
    expect(gotB[0]).toMatchObject({ id: gotA[0].id, body: 'held', attempt: 1, deliveryCount: 2 });
    await expect(a.ack(gotA[0])).rejects.toBeInstanceOf(StaleDeliveryError);
    await b.ack(gotB[0]);
  });

  it("tells its recovery listeners when a queue's data is gone", async () => {
    const errors: string[] = [];
    const sut = makeDriver({ epochCheckMs: 100, logger: { error: (m) => errors.push(m) } });
    const events: unknown[] = [];
    sut.onRecovery((event) => events.push(event));
    await sut.publish(queue, [{ body: 'lost soon' }]);
    // What a restart without persistence or a flush does to the queue's keys.
    const keys = await admin.keys(`${prefix}:*`);
    await admin.del(...keys);
    await waitFor(() => events.length > 0, { what: 'the loss to be noticed' });
    expect(events).toEqual([{ queues: [queue], lost: true, reason: 'the broker lost its data' }]);
    expect(errors).toEqual([expect.stringContaining(`lost the data of queue(s) ${queue}`)]);
  });

  it('keeps entries it cannot decode as dead letters with the reason, and goes on', async () => {
    const errors: string[] = [];
    const sut = makeDriver({ logger: { error: (message) => errors.push(message) } });
    await sut.publish(queue, [{ body: 'good' }]);
    // Another writer adds entries to the queue's stream that this driver did not write.
    const stream = `${prefix}:{${queue}}:s:0`;
    await admin.xadd(stream, '*', 'i', 'junk', 'a', '1', 'c', '0', 'k', '', 'd', 'not json');
    await admin.xadd(stream, '*', 'x', '1');

    const got = collect(sut);
    await waitFor(async () => (await sut.stats(queue)).dead === 2, { what: 'two dead letters' });
    await waitFor(() => got.length === 1);
    expect(got[0].body).toBe('good');
    await sut.ack(got[0]);
    expect(await sut.stats(queue)).toMatchObject({ ready: 0, inFlight: 0, dead: 2 });
    const letters = await sut.deadLetters(queue);
    expect(letters).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ id: 'junk', body: 'not json', reason: expect.any(String) }),
        // Fields it cannot read are kept as the entry's field list; the id is the entry's.
        expect.objectContaining({ id: expect.stringMatching(/^\d+-\d+$/), body: '["x","1"]' }),
      ]),
    );
    for (const letter of letters) expect(letter.reason).toMatch(/^undecodable message: /);
    expect(errors.filter((e) => e.includes('cannot decode'))).toHaveLength(2);
  });

  it('refuses a server that may evict keys, naming the setting', async () => {
    const sut = makeDriver();
    const client = (sut as unknown as { client: Redis }).client;
    const info = client.info.bind(client) as (section: string) => Promise<string>;
    // ioredis calls INFO itself to check readiness; only the driver's memory check is faked.
    jest
      .spyOn(client, 'info')
      .mockImplementation(((section: string) =>
        section === 'memory'
          ? Promise.resolve('# Memory\r\nmaxmemory_policy:allkeys-lru\r\n')
          : info(section)) as never);

    await expect(sut.connect()).rejects.toBeInstanceOf(RedisEvictionPolicyError);
    await expect(sut.ping()).rejects.toThrow(/maxmemory-policy.*allkeys-lru/);
  });

  it('reports an unreachable server as DriverUnavailableError without the URL credentials', async () => {
    const sut = makeDriver({ url: 'redis://user:s3cret@127.0.0.1:1' });

    const error = (await sut.ping().catch((e: unknown) => e)) as Error;
    expect(error).toBeInstanceOf(DriverUnavailableError);
    expect(error.message).not.toContain('s3cret');
  });
});
