import { randomUUID } from 'node:crypto';
import { type AddressInfo, connect } from 'node:net';
import { join } from 'node:path';
import { TaskEventsController } from '../../src/api/task-events.controller';
import { TaskEvents } from '../../src/tasks/task-events.service';
import { TaskStatus } from '../../src/persistence/task-status.enum';
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
  const listeners = () => t.app.get(TaskEventsController).fanout.size;

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

  it('streams the last progress report before the completion, though it came within the throttle', async () => {
    const stream = await open();
    // Two steps of 1 ms: the second report falls inside the 250 ms throttle and was once
    // written after the outcome, when the claim was gone, so it was dropped.
    const id = await submit('sleep', { ms: 2, steps: 2 });
    await sawStatus(stream, id, 'completed');

    expect(
      eventsOf(stream, id).map((e) => [e.type, e.status, (e as { progress?: number }).progress]),
    ).toEqual([
      ['status', 'queued', undefined],
      ['status', 'running', undefined],
      ['progress', 'running', 50],
      ['progress', 'running', 100],
      ['status', 'completed', undefined],
    ]);
    expect((await t.http.get(`/tasks/${id}`).expect(200)).body).toMatchObject({
      status: 'completed',
      progress: 100,
      progressMessage: 'step 2 of 2',
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

describe.each(['express', 'fastify'] as const)('event stream limits on %s', (adapter) => {
  const dir = tempDir();
  const MAX_BUFFER = 64 * 1024;
  let t: TestApp;
  let base: string;
  const streams: SseStream[] = [];
  const fanout = () => t.app.get(TaskEventsController).fanout;

  beforeAll(async () => {
    t = await startTestApp({
      adapter,
      dbPath: join(dir.path, 'limits.db'),
      env: {
        SSE_MAX_CONNECTIONS: '3',
        SSE_MAX_CONNECTIONS_PER_CLIENT: '2',
        SSE_MAX_BUFFER_BYTES: String(MAX_BUFFER),
      },
    });
    await t.app.listen(0, '127.0.0.1');
    const { port } = t.app.getHttpServer().address() as AddressInfo;
    base = `http://127.0.0.1:${port}`;
  });
  afterEach(async () => {
    streams.splice(0).forEach((s) => s.close());
    await waitFor(() => fanout().size === 0, { what: 'every stream to close' });
  });
  afterAll(async () => {
    await t.close();
    dir.remove();
  });

  /** A stream from `client`, a loopback address of its own (127.0.0.1 is supertest's). */
  async function open(client: string, query = ''): Promise<SseStream> {
    const stream = await openSse(`${base}/tasks/events${query}`, { localAddress: client });
    streams.push(stream);
    return stream;
  }

  it('answers 429 with Retry-After beyond the per-client cap, and beyond the global cap', async () => {
    expect((await open('127.0.0.1')).status).toBe(200);
    expect((await open('127.0.0.1')).status).toBe(200);
    const perClient = await t.http.get('/tasks/events').expect(429);
    expect(perClient.headers['retry-after']).toBe('5');
    expect(perClient.body).toEqual({
      statusCode: 429,
      error: 'Too Many Requests',
      message: 'too many open event streams for this client; close one first',
    });

    expect((await open('127.0.0.2')).status).toBe(200);
    const global = await open('127.0.0.3');
    expect(global.status).toBe(429);
    expect(fanout().size).toBe(3);
    // A place freed is a place taken again.
    streams[0].close();
    await waitFor(() => fanout().size === 2, { what: 'the closed stream to leave' });
    expect((await open('127.0.0.3')).status).toBe(200);
  });

  it('drops a client that does not read, keeping what the server holds for it bounded', async () => {
    const { port } = t.app.getHttpServer().address() as AddressInfo;
    const socket = connect(port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write('GET /tasks/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n');
    await waitFor(() => fanout().size === 1, { what: 'the stream to open' });
    socket.pause(); // reads nothing from here on
    const closed = new Promise((resolve) => socket.once('close', resolve));

    const events = t.app.get(TaskEvents);
    const progressMessage = 'x'.repeat(8 * 1024);
    let sent = 0;
    // Up to 64 MiB of events: the socket buffers fill, then the server's buffer reaches its bound.
    while (fanout().size > 0 && sent < 8 * 1024) {
      events.emit({
        type: 'progress',
        taskId: randomUUID(),
        action: 'sum',
        tenant: 'default',
        status: TaskStatus.Running,
        progress: 1,
        progressMessage,
        at: Date.now(),
      });
      sent += 1;
      expect(fanout().buffered()).toBeLessThanOrEqual(MAX_BUFFER);
      if (sent % 64 === 0) await new Promise((resolve) => setImmediate(resolve));
    }

    expect(fanout().size).toBe(0);
    expect(fanout().dropped).toBe(1);
    socket.resume();
    await closed;
    await t.http.get('/health').expect(200);
  });

  it('gives each of many filtered streams its own events and no others', async () => {
    const clients = ['127.0.0.4', '127.0.0.5', '127.0.0.6'];
    const ids = clients.map(() => randomUUID());
    const mine = await Promise.all(clients.map((client, i) => open(client, `?taskId=${ids[i]}`)));
    const events = t.app.get(TaskEvents);
    const emit = (taskId: string) =>
      events.emit({
        type: 'status',
        taskId,
        action: 'sum',
        tenant: 'default',
        status: TaskStatus.Running,
        at: 1,
      });
    for (let i = 0; i < 50; i++) emit(randomUUID()); // nobody's
    ids.forEach(emit);

    for (const [i, stream] of mine.entries()) {
      await waitFor(() => stream.events.length === 1, { what: `stream ${i}'s event` });
      expect(stream.events).toEqual([expect.objectContaining({ taskId: ids[i] })]);
    }
  });
});
