import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { connect, type ChannelModel } from 'amqplib';
import { describeWithService, RABBITMQ_SERVICE } from '../../../../test/helpers/service-available';
import { waitFor } from '../../../../test/helpers/wait-for';
import { DriverUnavailableError } from '../../errors/driver-unavailable.error';
import { StaleDeliveryError } from '../../errors/stale-delivery.error';
import type { ConsumerHandle } from '../../interfaces/queue-driver.interface';
import type { Delivery } from '../../interfaces/queue-message.interface';
import { AmqpQueueDriver, type AmqpDriverOptions } from './amqp.driver';

describeWithService(RABBITMQ_SERVICE, AmqpQueueDriver.name, () => {
  let admin: ChannelModel;
  let queue: string;
  const drivers: AmqpQueueDriver[] = [];
  const handles: ConsumerHandle[] = [];

  function makeDriver(options: AmqpDriverOptions = {}): AmqpQueueDriver {
    const driver = new AmqpQueueDriver(options);
    drivers.push(driver);
    return driver;
  }

  function collect(driver: AmqpQueueDriver, prefetch = 10): Delivery[] {
    const got: Delivery[] = [];
    handles.push(driver.consume(queue, (d) => got.push(d), { prefetch }));
    return got;
  }

  beforeAll(async () => {
    admin = await connect('amqp://guest:guest@127.0.0.1:5672');
  });

  beforeEach(() => {
    queue = `taskq-test-${randomUUID()}`;
  });

  afterEach(async () => {
    await Promise.all(handles.splice(0).map((h) => h.cancel()));
    await Promise.all(drivers.splice(0).map((d) => d.close()));
    const channel = await admin.createChannel();
    for (const name of [queue, `${queue}.dead`, `${queue}.delay.200`]) {
      await channel.deleteQueue(name);
    }
    await channel.close();
  });

  afterAll(async () => {
    await admin.close();
  });

  it('nack returns the message with attempt + 1 after its delay; release keeps the attempt', async () => {
    const sut = makeDriver();
    await sut.publish(queue, [{ body: 'x' }]);
    const got = collect(sut);
    await waitFor(() => got.length === 1);

    await sut.nack(got[0], { delayMs: 200 });
    await waitFor(() => got.length === 2);
    expect(got[1]).toMatchObject({ id: got[0].id, attempt: 2, deliveryCount: 2 });

    await sut.release(got[1]);
    await waitFor(() => got.length === 3);
    expect(got[2]).toMatchObject({ id: got[0].id, attempt: 2 });
    expect(got[2].deliveryCount).toBeGreaterThan(2);
    await expect(sut.nack(got[1])).rejects.toBeInstanceOf(StaleDeliveryError);
  });

  it('frees a deduplication key whose publish failed, so the next publish goes out', async () => {
    const sut = makeDriver();
    await sut.ping();
    // A delay queue declared with other arguments makes the driver's declaration, and so the
    // publish, fail after the key was taken.
    const channel = await admin.createChannel();
    await channel.assertQueue(`${queue}.delay.200`, { durable: false });
    await channel.close();
    await expect(
      sut.publish(queue, [{ body: 'lost', deduplicationKey: 'k', delayMs: 200 }]),
    ).rejects.toThrow();

    const cleanup = await admin.createChannel();
    await cleanup.deleteQueue(`${queue}.delay.200`);
    await cleanup.close();
    const [id] = await sut.publish(queue, [{ body: 'kept', deduplicationKey: 'k' }]);
    const got = collect(sut);
    await waitFor(() => got.length === 1);
    expect(got[0]).toMatchObject({ id, body: 'kept' });
  });

  it('carries its metadata in the body, leaving the AMQP headers table empty', async () => {
    const sut = makeDriver();
    const [id] = await sut.publish(queue, [
      { body: { n: 1 }, headers: { h: 'v' }, priority: 12, attempt: 2, deduplicationKey: 'k' },
    ]);
    const channel = await admin.createChannel();
    const raw = await channel.get(queue, { noAck: true });
    await channel.close();

    expect(raw && raw.properties).toMatchObject({
      contentType: 'application/vnd.taskq.v1+json',
      priority: 10,
      deliveryMode: 2,
    });
    // amqplib always sends a table; it stays empty.
    expect(Object.keys((raw && raw.properties.headers) ?? {})).toEqual([]);
    expect(JSON.parse(raw ? raw.content.toString() : '')).toEqual({
      i: id,
      a: 2,
      c: 0,
      p: 12,
      h: { h: 'v' },
      k: 'k',
      b: { n: 1 },
    });
  });

  it('still reads messages queued by the header-based format of earlier versions', async () => {
    const sut = makeDriver();
    await sut.ping();
    await sut.ensureQueue(queue);
    const channel = await admin.createConfirmChannel();
    channel.sendToQueue(queue, Buffer.from(JSON.stringify({ old: true })), {
      persistent: true,
      contentType: 'application/json',
      messageId: 'old-1',
      priority: 3,
      headers: {
        'x-taskq-attempt': 2,
        'x-taskq-deliveries': 1,
        'x-taskq-priority': 3,
        'x-taskq-dedup': 'k-old',
        'x-max-attempts': '5',
      },
    });
    await channel.waitForConfirms();
    await channel.close();
    const got = collect(sut);
    await waitFor(() => got.length === 1);
    expect(got[0]).toMatchObject({
      id: 'old-1',
      body: { old: true },
      headers: { 'x-max-attempts': '5' },
      priority: 3,
      attempt: 2,
      deliveryCount: 2,
    });

    // Dead-lettered, it is rewritten in the new format and keeps what it carried.
    await sut.deadLetter(got[0], 'done');
    const [dead] = await sut.deadLetters(queue);
    expect(dead).toMatchObject({
      id: 'old-1',
      body: { old: true },
      headers: { 'x-max-attempts': '5' },
      attempt: 2,
      reason: 'done',
    });
  });

  it('keeps a message it cannot decode as a dead letter with the reason, and goes on', async () => {
    const errors: string[] = [];
    const sut = makeDriver({ logger: { error: (message) => errors.push(message) } });
    await sut.ensureQueue(queue);
    const channel = await admin.createConfirmChannel();
    channel.sendToQueue(queue, Buffer.from('not json'), { messageId: 'junk' });
    // JSON, but not this driver's envelope, and no message id as earlier versions always set.
    channel.sendToQueue(queue, Buffer.from('{"x":1}'), { contentType: 'application/json' });
    await channel.waitForConfirms();
    await channel.close();
    await sut.publish(queue, [{ body: 'good' }]);

    const got = collect(sut);
    await waitFor(() => got.length === 1);
    expect(got[0].body).toBe('good');
    await sut.ack(got[0]);
    await waitFor(async () => (await sut.stats(queue)).dead === 2);
    const stats = await sut.stats(queue);
    expect(stats).toMatchObject({ ready: 0, inFlight: 0, dead: 2 });
    const letters = await sut.deadLetters(queue);
    expect(letters).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          id: 'junk',
          body: 'not json',
          reason: expect.stringMatching(/^undecodable message: .*JSON/),
        }),
        expect.objectContaining({
          body: '{"x":1}',
          headers: { 'content-type': 'application/json' },
          reason: 'undecodable message: no message id: not a message of this driver',
        }),
      ]),
    );
    expect(errors).toEqual([
      expect.stringContaining('message id junk'),
      expect.stringContaining('cannot decode'),
    ]);
  });

  it('acks out of order without acking a delivery still being nacked', async () => {
    const sut = makeDriver();
    await sut.publish(
      queue,
      Array.from({ length: 6 }, (_, i) => ({ body: i })),
    );
    const got = collect(sut, 6);
    await waitFor(() => got.length === 6);

    // 1 is held while the others are acked in one turn: one ack covers 0, the rest go singly.
    await Promise.all([0, 2, 3, 5].map((i) => sut.ack(got[i])));
    await sut.release(got[4]);
    await waitFor(() => got.length === 7);
    expect(got[6].body).toBe(4);
    await sut.nack(got[1]);
    await waitFor(() => got.length === 8);
    expect(got[7]).toMatchObject({ body: 1, attempt: 2 });
    await Promise.all([sut.ack(got[6]), sut.ack(got[7])]);
    await waitFor(async () => (await sut.stats(queue)).inFlight === 0);

    // Nothing comes back: every ack reached the broker, and only those.
    const channel = await admin.createChannel();
    const check = await channel.checkQueue(queue);
    await channel.close();
    expect(check.messageCount).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(got).toHaveLength(8);
  });

  it('sends the acks gathered so far before a cancelled consumer closes its channel', async () => {
    const sut = makeDriver();
    await sut.publish(queue, [{ body: 'a' }, { body: 'b' }]);
    const got: Delivery[] = [];
    const handle = sut.consume(queue, (d) => got.push(d), { prefetch: 10 });
    await waitFor(() => got.length === 2);
    const cancelled = handle.cancel();
    await sut.ack(got[0]);
    await new Promise((resolve) => setImmediate(resolve));
    // The last ack lets the channel close: its own ack must go out first.
    await sut.ack(got[1]);
    await cancelled;
    await sut.close();

    const channel = await admin.createChannel();
    const check = await channel.checkQueue(queue);
    await channel.close();
    expect(check.messageCount).toBe(0);
  });

  it('sends a burst of frames in one socket write', async () => {
    const sut = makeDriver();
    await sut.ensureQueue(queue);
    const model = await sut.connection();
    const socket = (model as unknown as { connection: { stream: Record<string, unknown> } })
      .connection.stream;
    const writes = { single: 0, vectored: 0 };
    for (const [name, key] of [
      ['_write', 'single'],
      ['_writev', 'vectored'],
    ] as const) {
      const original = socket[name] as (...args: unknown[]) => unknown;
      socket[name] = (...args: unknown[]) => {
        writes[key] += 1;
        return original.apply(socket, args);
      };
    }

    await sut.publish(
      queue,
      Array.from({ length: 50 }, (_, i) => ({ body: i })),
    );
    expect(writes.vectored).toBeGreaterThan(0);
    expect(writes.single + writes.vectored).toBeLessThan(10);
  });

  it('resumes consuming by itself when the server closes its connection, losing nothing', async () => {
    const sut = makeDriver();
    const total = 300;
    const acked = new Set<string>();
    const stale: Delivery[] = [];
    handles.push(
      sut.consume(
        queue,
        (d) => {
          sut.ack(d).then(
            () => acked.add(d.body as string),
            () => stale.push(d),
          );
        },
        { prefetch: 8 },
      ),
    );

    await sut.publish(
      queue,
      Array.from({ length: total / 2 }, (_, i) => ({ body: `m${i}` })),
    );
    await waitFor(() => acked.size > 0);
    await closeDriverConnections(sut);
    await waitFor(
      () =>
        sut
          .publish(
            queue,
            Array.from({ length: total / 2 }, (_, i) => ({ body: `m${i + total / 2}` })),
          )
          .then(
            () => true,
            () => false,
          ),
      { timeoutMs: 20_000, intervalMs: 200, what: 'publishing after the reconnect' },
    );

    await waitFor(() => acked.size === total, { timeoutMs: 30_000, what: 'every message' });
    expect((await sut.stats(queue)).ready).toBe(0);
  }, 60_000);

  it('reports an unreachable broker as DriverUnavailableError without the URL credentials', async () => {
    const sut = makeDriver({ url: 'amqp://user:s3cret@127.0.0.1:1' });

    const error = (await sut.ping().catch((e: unknown) => e)) as Error;
    expect(error).toBeInstanceOf(DriverUnavailableError);
    expect(error.message).not.toContain('s3cret');
  });
});

/**
 * Closes the driver's connection from the server with rabbitmqctl when it is usable here;
 * otherwise destroys the client socket, which the driver sees the same way.
 */
async function closeDriverConnections(driver: AmqpQueueDriver): Promise<void> {
  try {
    const rows = execFileSync(
      'rabbitmqctl',
      ['list_connections', '--quiet', '--no-table-headers', 'pid', 'client_properties'],
      { encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'ignore'] },
    );
    const pids = rows
      .split('\n')
      .filter((row) => row.includes(driver.connectionName))
      .map((row) => row.split('\t')[0]);
    for (const pid of pids) {
      execFileSync('rabbitmqctl', ['close_connection', pid, 'taskq test: server-side drop'], {
        timeout: 30_000,
        stdio: 'ignore',
      });
    }
    if (pids.length > 0) return;
  } catch {
    // rabbitmqctl missing or not allowed to reach the node: fall through to the socket.
  }
  const model = await driver.connection();
  (model as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
}
