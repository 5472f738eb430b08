import { Injectable, Module } from '@nestjs/common';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { type TaskContext, TaskHandler } from '../../src/handlers';
import { startTestApp, tempDir, type TestApp } from '../helpers/create-test-app';
import { deferred, waitFor } from '../helpers/wait-for';

/** A handler held on a promise the test releases, as golevelup's shutdown test does. */
const control = { gate: deferred(), runs: 0, signals: [] as AbortSignal[] };

@Injectable()
class BlockingHandlers {
  @TaskHandler('block')
  async block(_data: unknown, ctx: TaskContext): Promise<{ output: string }> {
    control.runs += 1;
    control.signals.push(ctx.signal);
    await new Promise<void>((resolve, reject) => {
      void control.gate.promise.then(resolve);
      ctx.signal.addEventListener('abort', () => reject(new Error('aborted by shutdown')));
    });
    return { output: 'released' };
  }
}

@Module({ providers: [BlockingHandlers] })
class BlockingModule {}

describe('graceful shutdown', () => {
  const dir = tempDir();
  afterAll(() => dir.remove());
  beforeEach(() => {
    control.gate = deferred();
    control.runs = 0;
    control.signals = [];
  });

  const start = (name: string, env: Record<string, string> = {}) =>
    startTestApp({ dbPath: join(dir.path, name), modules: [BlockingModule], env });
  const statusOf = async (t: TestApp, id: string) =>
    (await t.http.get(`/tasks/${id}`).expect(200)).body;

  it('waits for a handler in flight, records its result, then closes', async () => {
    // Arrange
    const t = await start('drain.db', { SHUTDOWN_TIMEOUT_MS: '30000' });
    const { id } = (await t.http.post('/tasks').send({ action: 'block' }).expect(202)).body;
    await waitFor(async () => (await statusOf(t, id)).status === 'running');

    // Act
    let closed = false;
    const closing = t.close().then(() => (closed = true));
    await new Promise((resolve) => setTimeout(resolve, 200));

    // Assert: the close waits for the handler...
    expect(closed).toBe(false);
    control.gate.resolve();
    await closing;
    // ...and the outcome was committed before the database closed.
    const db = new Database(t.dbPath, { readonly: true });
    const row = db.prepare('SELECT status, result FROM tasks WHERE id = ?').get(id);
    db.close();
    expect(row).toEqual({ status: 'completed', result: JSON.stringify({ output: 'released' }) });
    expect(control.runs).toBe(1);
    expect(control.signals[0].aborted).toBe(false);
  });

  it('aborts a handler still running at the timeout and runs it again after a restart', async () => {
    // Arrange
    const first = await start('abort.db', { SHUTDOWN_TIMEOUT_MS: '100' });
    const { id } = (await first.http.post('/tasks').send({ action: 'block' }).expect(202)).body;
    await waitFor(async () => (await statusOf(first, id)).status === 'running');

    // Act
    await first.close();

    // Assert: aborted, not recorded as a failure: the row still says running.
    expect(control.signals[0].aborted).toBe(true);
    const db = new Database(first.dbPath, { readonly: true });
    expect(db.prepare('SELECT status, error FROM tasks WHERE id = ?').get(id)).toEqual({
      status: 'running',
      error: null,
    });
    db.close();

    // A restart picks the task up again and this time it finishes.
    control.gate.resolve();
    const second = await start('abort.db');
    try {
      const task = await waitFor(async () => {
        const body = await statusOf(second, id);
        return body.status === 'completed' ? body : undefined;
      });
      expect(task.result).toEqual({ output: 'released' });
      expect(control.runs).toBe(2);
    } finally {
      await second.close();
    }
  });
});
