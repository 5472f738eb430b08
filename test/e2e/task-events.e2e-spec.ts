import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { TaskEvents } from '../../src/tasks/task-events.service';
import { startTestApp, tempDir, type TestApp } from '../helpers/create-test-app';
import { openSse, type SseStream } from '../helpers/sse-client';
import { waitFor } from '../helpers/wait-for';

interface Event {
  type: string;
  taskId: string;
  action: string;
  status: string;
}

describe.each(['express', 'fastify'] as const)('GET /tasks/events on %s', (adapter) => {
  const dir = tempDir();
  let t: TestApp;
  let base: string;
  const streams: SseStream[] = [];

  beforeAll(async () => {
    t = await startTestApp({ adapter, dbPath: join(dir.path, 'tasks.db') });
    await t.app.listen(0, '127.0.0.1');
    const { port } = t.app.getHttpServer().address() as AddressInfo;
    base = `http://127.0.0.1:${port}`;
  });
  afterEach(() => streams.splice(0).forEach((s) => s.close()));
  afterAll(async () => {
    await t.close();
    dir.remove();
  });

  async function open(query = ''): Promise<SseStream> {
    const stream = await openSse(`${base}/tasks/events${query}`);
    streams.push(stream);
    return stream;
  }
  const submit = async (action: string, data: object): Promise<string> =>
    (await t.http.post('/tasks').send({ action, data }).expect(202)).body.id;
  const eventsOf = (stream: SseStream, id: string) =>
    (stream.events as Event[]).filter((e) => e.taskId === id);
  const sawStatus = (stream: SseStream, id: string, status: string) =>
    waitFor(() => eventsOf(stream, id).some((e) => e.status === status), {
      timeoutMs: 20_000,
      what: `a ${status} event of ${id}`,
    });
  const listeners = () => t.app.get(TaskEvents)['emitter'].listenerCount('task');

  it('streams a task from queued through running to completed', async () => {
    const stream = await open();
    expect(stream.status).toBe(200);
    expect(stream.contentType).toMatch(/^text\/event-stream/);

    const id = await submit('uppercase', { text: 'stream me' });
    await sawStatus(stream, id, 'completed');

    expect(eventsOf(stream, id).map((e) => e.status)).toEqual(['queued', 'running', 'completed']);
    expect(eventsOf(stream, id)[0]).toEqual({
      type: 'status',
      taskId: id,
      tenant: 'default',
      action: 'uppercase',
      status: 'queued',
      at: expect.any(Number),
    });
  });

  it('streams only the task named by taskId', async () => {
    const slow = await submit('sleep', { ms: 300 });
    const stream = await open(`?taskId=${slow}`);
    const other = await submit('uppercase', { text: 'not mine' });
    await waitFor(async () => (await t.http.get(`/tasks/${other}`)).body.status === 'completed', {
      what: 'the other task to complete',
    });
    await sawStatus(stream, slow, 'completed');

    expect(stream.events.length).toBeGreaterThan(0);
    expect((stream.events as Event[]).every((e) => e.taskId === slow)).toBe(true);
  });

  it('streams only tasks of the action named by action', async () => {
    const stream = await open('?action=sum');
    const skipped = await submit('uppercase', { text: 'skip' });
    await waitFor(async () => (await t.http.get(`/tasks/${skipped}`)).body.status === 'completed', {
      what: 'the uppercase task to complete',
    });
    const id = await submit('sum', { numbers: [1, 2] });
    // Events are written in order, so every uppercase event would have arrived before this one.
    await sawStatus(stream, id, 'completed');

    expect((stream.events as Event[]).map((e) => e.action)).toEqual(['sum', 'sum', 'sum']);
  });

  it('answers 400 for an unknown or bad filter, without opening a stream', async () => {
    const res = await t.http.get('/tasks/events?colour=red').expect(400);
    expect(res.body.message).toEqual(['property colour should not exist']);
    await t.http.get('/tasks/events?action=%20bad%20').expect(400);
  });

  it('stops listening when the client disconnects', async () => {
    const before = listeners();
    const stream = await open();
    await waitFor(() => listeners() === before + 1, { what: 'the stream to subscribe' });
    stream.close();
    await waitFor(() => listeners() === before, { what: 'the stream to unsubscribe' });
  });

  it('is documented in the OpenAPI document', async () => {
    const doc = (await t.http.get('/docs-json').expect(200)).body;
    const op = doc.paths['/tasks/events'].get;
    expect(Object.keys(op.responses['200'].content)).toEqual(['text/event-stream']);
    expect(op.parameters.map((p: { name: string }) => p.name).sort()).toEqual(['action', 'taskId']);
  });
});

describe.each(['express', 'fastify'] as const)('an open event stream on %s', (adapter) => {
  const dir = tempDir();
  afterAll(() => dir.remove());

  it('ends when the application shuts down, without holding app.close() up', async () => {
    const t = await startTestApp({ adapter, dbPath: join(dir.path, `${adapter}.db`) });
    await t.app.listen(0, '127.0.0.1');
    const { port } = t.app.getHttpServer().address() as AddressInfo;
    const stream = await openSse(`http://127.0.0.1:${port}/tasks/events`);
    try {
      await t.close();
      await stream.ended;
    } finally {
      stream.close();
    }
  });
});
