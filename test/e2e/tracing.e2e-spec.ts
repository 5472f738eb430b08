import { SpanKind } from '@opentelemetry/api';
import {
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { join } from 'node:path';
import { startTracing } from '../../src/observability/tracing';
import { startTestApp, tempDir, type TestApp } from '../helpers/create-test-app';
import { waitFor } from '../helpers/wait-for';

/**
 * One trace from request to result across an `api` app and a `worker` app: the API's server
 * span travels in the task's message (the sqlite driver's file here; any driver carries the
 * same headers) and the worker's handler span joins it.
 */
describe('traces across an api and a worker application', () => {
  const dir = tempDir();
  const exporter = new InMemorySpanExporter();
  const sdk = startTracing({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const apps: TestApp[] = [];
  afterAll(async () => {
    await Promise.all(apps.map((t) => t.close()));
    await sdk.shutdown();
    dir.remove();
  });

  it('puts POST /tasks and the handler that ran the task in one trace', async () => {
    // Arrange: two applications on one task database and queue, as two processes would be.
    const dbPath = join(dir.path, 'traced.db');
    // The memory driver cannot carry messages between applications: these two share a file.
    const env = { QUEUE_DRIVER: 'sqlite' };
    const api = await startTestApp({ dbPath, env: { ...env, APP_ROLE: 'api' } });
    apps.push(api);
    const worker = await startTestApp({ dbPath, env: { ...env, APP_ROLE: 'worker' } });
    apps.push(worker);

    // Act
    const { id } = (
      await api.http
        .post('/tasks')
        .send({ action: 'uppercase', data: { text: 'x' } })
        .expect(202)
    ).body as { id: string };
    await waitFor(async () => (await api.http.get(`/tasks/${id}`)).body.status === 'completed', {
      what: 'the worker to complete the task',
    });
    const spans = await waitFor(
      () => {
        const finished = exporter.getFinishedSpans();
        const request = finished.find((s) => s.name === 'POST /tasks');
        const handler = finished.find(
          (s) => s.name === 'task uppercase' && s.attributes['taskq.task_id'] === id,
        );
        return request && handler ? { request, handler } : undefined;
      },
      { what: 'both spans to end' },
    );

    // Assert
    const { request, handler }: { request: ReadableSpan; handler: ReadableSpan } = spans;
    expect(request.kind).toBe(SpanKind.SERVER);
    expect(request.attributes).toMatchObject({
      'http.route': '/tasks',
      'http.response.status_code': 202,
    });
    expect(handler.kind).toBe(SpanKind.CONSUMER);
    expect(handler.spanContext().traceId).toBe(request.spanContext().traceId);
    expect(handler.parentSpanContext?.spanId).toBe(request.spanContext().spanId);
    expect(handler.links.map((l) => l.context.spanId)).toEqual([request.spanContext().spanId]);
    expect(handler.attributes).toMatchObject({
      'taskq.action': 'uppercase',
      'taskq.attempt': 1,
      'messaging.destination.name': 'tasks',
    });
  });
});
