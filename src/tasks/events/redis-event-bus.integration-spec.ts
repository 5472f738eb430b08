import { randomUUID } from 'node:crypto';
import Redis from 'ioredis';
import { describeWithService, REDIS_SERVICE } from '../../../test/helpers/service-available';
import { RedisEventBus } from './redis-event-bus';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

async function until(probe: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Pub/sub keeps no keys, so there is nothing to clean up on the server but the connections. */
describeWithService(REDIS_SERVICE, RedisEventBus.name, () => {
  const buses: RedisEventBus[] = [];
  afterAll(() => Promise.all(buses.map((bus) => bus.close())));

  async function started(scope: string): Promise<{ bus: RedisEventBus; received: string[] }> {
    const bus = new RedisEventBus(REDIS_URL, 'taskq-test', scope);
    const received: string[] = [];
    await bus.start((message) => received.push(message));
    buses.push(bus);
    return { bus, received };
  }

  it('delivers each message to every bus of the scope, its sender included, and to no other scope', async () => {
    const scope = randomUUID();
    const a = await started(scope);
    const b = await started(scope);
    const other = await started(randomUUID());

    await a.bus.publish('one');
    await b.bus.publish('two');
    await until(() => a.received.length === 2 && b.received.length === 2, 'both messages');

    expect(a.received).toEqual(['one', 'two']);
    expect(b.received).toEqual(['one', 'two']);
    expect(other.received).toEqual([]);
  });

  it('subscribes again after the server drops its subscribed connection', async () => {
    const scope = randomUUID();
    const sender = await started(scope);
    const listener = await started(scope);
    const admin = new Redis(REDIS_URL);
    try {
      expect(await admin.client('KILL', 'ID', String(listener.bus.subscriberId))).toBe(1);
    } finally {
      admin.disconnect();
    }

    await until(async () => {
      await sender.bus.publish('after').catch(() => undefined);
      return listener.received.includes('after');
    }, 'a message after the reconnect');
  });
});
