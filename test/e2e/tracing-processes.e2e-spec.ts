import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import request from 'supertest';
import { distFile, finished, startNode } from '../helpers/child-process';
import { databaseEnv, tempDir } from '../helpers/create-test-app';
import { waitFor } from '../helpers/wait-for';

interface ExportedSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  service: string;
}

/** An OTLP/HTTP (JSON) collector: what the SDK of each process sends to /v1/traces. */
async function startCollector(): Promise<{ url: string; spans: ExportedSpan[]; server: Server }> {
  const spans: ExportedSpan[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (req.url === '/v1/traces') {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
          resourceSpans: {
            resource: { attributes: { key: string; value: { stringValue?: string } }[] };
            scopeSpans: { spans: Omit<ExportedSpan, 'service'>[] }[];
          }[];
        };
        for (const rs of body.resourceSpans) {
          const service =
            rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue ?? '';
          for (const ss of rs.scopeSpans) for (const s of ss.spans) spans.push({ ...s, service });
        }
      }
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, spans, server };
}

describe('a trace across an api process and a worker process (OTLP)', () => {
  const dir = tempDir();
  const children: ReturnType<typeof startNode>[] = [];
  afterEach(() => children.splice(0).forEach((c) => c.exitCode === null && c.kill('SIGKILL')));
  afterAll(() => dir.remove());

  it('exports POST /tasks from the api and the handler span from the worker in one trace', async () => {
    // Arrange: a collector, and two processes on one task file, each exporting to it.
    const collector = await startCollector();
    try {
      const base = {
        ...(await databaseEnv(join(dir.path, 'otlp.db'))),
        QUEUE_DRIVER: 'sqlite',
        HOST: '127.0.0.1',
        PORT: '0',
        LOG_LEVEL: 'log',
        OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
      };
      const start = async (role: string) => {
        const child = startNode(distFile('main.js'), {
          ...base,
          APP_ROLE: role,
          OTEL_SERVICE_NAME: `taskq-${role}`,
        });
        children.push(child);
        const url = await waitFor(() => /listening on (http:\/\/\S+)/.exec(child.output())?.[1], {
          timeoutMs: 60_000,
          what: `the ${role} process to listen`,
        });
        return { child, url };
      };
      const api = await start('api');
      const worker = await start('worker');

      // Act
      const http = request(api.url);
      const { id } = (
        await http
          .post('/tasks')
          .send({ action: 'uppercase', data: { text: 'traced' } })
          .expect(202)
      ).body as {
        id: string;
      };
      await waitFor(async () => (await http.get(`/tasks/${id}`)).body.status === 'completed', {
        what: 'the worker process to complete the task',
      });
      for (const p of [api, worker]) {
        const exited = finished(p.child);
        p.child.kill('SIGTERM'); // flushes the last spans before exiting
        expect(await exited).toMatchObject({ code: 0 });
      }

      // Assert: the worker's span is a child of the api's span, in the same trace.
      // Each process sends its last batch while it shuts down; the collector may still be
      // reading them when the processes are gone.
      const { posted, handled } = await waitFor(
        () => {
          const p = collector.spans.find((s) => s.name === 'POST /tasks');
          const h = collector.spans.find((s) => s.name === 'task uppercase');
          return p && h ? { posted: p, handled: h } : undefined;
        },
        { what: 'both processes to export their spans' },
      );
      expect(posted).toMatchObject({ service: 'taskq-api' });
      expect(handled).toMatchObject({
        service: 'taskq-worker',
        traceId: posted.traceId,
        parentSpanId: posted.spanId,
      });
    } finally {
      await new Promise((resolve) => collector.server.close(resolve));
    }
  }, 180_000);
});
