import { createServer, connect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { startTestApp, tempDir } from '../helpers/create-test-app';
import { freshPgSchema, type PgSchema } from '../helpers/pg-schema';
import { describeWithService, postgresServiceAt } from '../helpers/service-available';
import { waitFor } from '../helpers/wait-for';

const PG_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const POSTGRES = postgresServiceAt(PG_URL);

/**
 * A TCP relay in front of the shared PostgreSQL: cutting it is, for the service, the database
 * going away (connections reset, new ones refused), without touching the real server.
 */
class Relay {
  private server?: Server;
  private readonly sockets = new Set<Socket>();
  port = 0;

  /** `silent`: connections are accepted and never answered, as behind a dead network path. */
  async open(silent = false): Promise<void> {
    this.server = createServer((client) => {
      if (silent) {
        this.sockets.add(client);
        client.on('close', () => this.sockets.delete(client));
        return;
      }
      const upstream = connect(POSTGRES.port, POSTGRES.host);
      for (const [a, b] of [
        [client, upstream],
        [upstream, client],
      ]) {
        this.sockets.add(a);
        a.on('error', () => b.destroy());
        a.on('close', () => {
          this.sockets.delete(a);
          b.destroy();
        });
        a.pipe(b);
      }
    });
    await new Promise<void>((resolve) => this.server!.listen(this.port, '127.0.0.1', resolve));
    this.port = (this.server.address() as { port: number }).port;
  }

  async cut(): Promise<void> {
    const closed = new Promise((resolve) => this.server?.close(resolve));
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }
}

describeWithService(POSTGRES, 'PostgreSQL unreachable under the service', () => {
  const dir = tempDir();
  let pgSchema: PgSchema;
  const relays: Relay[] = [];

  beforeAll(async () => {
    pgSchema = await freshPgSchema('e2e_outage', PG_URL);
  });
  afterAll(async () => {
    for (const relay of relays) await relay.cut();
    await pgSchema?.drop();
    dir.remove();
  });

  it.each(['express', 'fastify'] as const)(
    '%s: 503 with Retry-After while it is away or silent, health down, 202 again when it is back, every 202 stored',
    async (adapter) => {
      const relay = new Relay();
      relays.push(relay);
      await relay.open();
      // The schema's URL (its search_path), through the relay.
      const url = new URL(pgSchema.url);
      url.host = `127.0.0.1:${relay.port}`;
      const t = await startTestApp({
        dbPath: join(dir.path, `${adapter}.db`),
        adapter,
        env: { DATABASE_URL: url.toString(), QUEUE_DRIVER: 'memory' },
      });
      try {
        const accepted: string[] = [];
        const post = async () => {
          const res = await t.http
            .post('/tasks')
            .send({ action: 'uppercase', data: { text: 'a' } });
          if (res.status === 202) accepted.push(res.body.id);
          return res;
        };
        expect((await post()).status).toBe(202);

        await relay.cut();
        const refused = await post();
        expect(refused.status).toBe(503);
        expect(refused.headers['retry-after']).toMatch(/^\d+$/);
        expect(refused.body.message).toMatch(/^database unavailable: /);
        const health = await t.http.get('/health').expect(503);
        expect(health.body.database).toMatch(/^down: /);

        // A server that accepts and never answers: the request still ends, as a 503, within
        // the connect timeout (no 20 s hang, no 202).
        await relay.open(true);
        const silent = await post();
        expect(silent.status).toBe(503);
        expect(silent.body.message).toMatch(/^database unavailable: /);
        await relay.cut();

        await relay.open();
        await waitFor(async () => (await post()).status === 202, {
          timeoutMs: 20_000,
          intervalMs: 100,
          what: 'POST /tasks to answer 202 once PostgreSQL is reachable again',
        });
        for (const id of accepted) {
          await waitFor(
            async () => (await t.http.get(`/tasks/${id}`).expect(200)).body.status === 'completed',
            { timeoutMs: 20_000, intervalMs: 50, what: `task ${id} to complete` },
          );
        }
      } finally {
        await t.close();
      }
    },
  );
});
