import { freshPgSchema, type PgSchema, withPg } from '../../../test/helpers/pg-schema';
import { describeWithService } from '../../../test/helpers/service-available';
import { channelName, PgEventBus } from './pg-event-bus';

const PG_URL = process.env.E2E_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

async function until(probe: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describeWithService({ name: 'PostgreSQL', host: '127.0.0.1', port: 5432 }, PgEventBus.name, () => {
  const schemas: PgSchema[] = [];
  const buses: PgEventBus[] = [];
  afterAll(async () => {
    await Promise.all(buses.map((bus) => bus.close()));
    for (const schema of schemas) await schema.drop();
  });

  /** A bus on a schema of its own, started, with what it received. */
  async function started(schema: PgSchema): Promise<{ bus: PgEventBus; received: string[] }> {
    const bus = new PgEventBus(schema.url);
    const received: string[] = [];
    await bus.start((message) => received.push(message));
    buses.push(bus);
    return { bus, received };
  }
  async function freshSchema(): Promise<PgSchema> {
    const schema = await freshPgSchema('events', PG_URL);
    schemas.push(schema);
    return schema;
  }

  it('delivers each message to every bus of the schema, its sender included, and to no other schema', async () => {
    const [schema, elsewhere] = [await freshSchema(), await freshSchema()];
    const a = await started(schema);
    const b = await started(schema);
    const other = await started(elsewhere);

    await a.bus.publish('one');
    await b.bus.publish('two');
    await until(() => a.received.length === 2 && b.received.length === 2, 'both messages');

    expect(a.received).toEqual(['one', 'two']);
    expect(b.received).toEqual(['one', 'two']);
    expect(other.received).toEqual([]);
  });

  it('sends many messages in one statement, in order, each once', async () => {
    const schema = await freshSchema();
    const a = await started(schema);
    const b = await started(schema);
    const messages = Array.from({ length: 50 }, (_, i) => `m${i}`);
    const failed = jest.fn();
    await a.bus.publishAll(messages, failed);
    await until(() => b.received.length === 50, 'every message');
    expect(b.received).toEqual(messages);
    expect(failed).not.toHaveBeenCalled();
  });

  it('reports a batch it could not send, and rejects nothing', async () => {
    const schema = await freshSchema();
    const { bus } = await started(schema);
    await bus.close();
    const failed = jest.fn();
    await bus.publishAll(['a', 'b'], failed);
    expect(failed).toHaveBeenCalledWith(expect.any(Error));
  });

  it('listens again after its connection is killed', async () => {
    const schema = await freshSchema();
    const sender = await started(schema);
    const listener = await started(schema);
    const killed = listener.bus.backendPid;
    expect(killed).toEqual(expect.any(Number));

    await withPg((client) => client.query('SELECT pg_terminate_backend($1)', [killed]), PG_URL);
    // Until it has listened again, messages are missed: keep sending until one arrives.
    await until(async () => {
      await sender.bus.publish('after');
      return listener.received.includes('after');
    }, 'a message after the reconnect');

    expect(listener.bus.backendPid).not.toBe(killed);
  });

  it('names long schemas by a hash, within the 63-byte channel limit', () => {
    expect(channelName('tasks')).toBe('taskq_events_tasks');
    const long = channelName('s'.repeat(60));
    expect(Buffer.byteLength(long)).toBeLessThanOrEqual(63);
    expect(long).not.toBe(channelName('t'.repeat(60)));
  });
});
