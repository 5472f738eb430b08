import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { example } from '../../clients/typescript/example';
import { createTaskqClient } from '../../clients/typescript/src';
import { startTestApp, tempDir, type TestApp } from '../helpers/create-test-app';

/** The typed client (clients/typescript) and its README example, against the real service. */
describe.each(['express', 'fastify'] as const)('the TypeScript client on %s', (adapter) => {
  const dir = tempDir();
  let t: TestApp;
  let base: string;

  beforeAll(async () => {
    t = await startTestApp({ adapter, dbPath: join(dir.path, 'tasks.db') });
    await t.app.listen(0, '127.0.0.1');
    base = `http://127.0.0.1:${(t.app.getHttpServer().address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await t.close();
    dir.remove();
  });

  it('runs the README example: submit, wait with waitMs, read result.output', async () => {
    expect(await example(base)).toBe('completed: HELLO WORLD');
  });

  it('gives typed error bodies, and types /health', async () => {
    const taskq = createTaskqClient(base);
    const refused = await taskq.POST('/tasks', { body: { action: 'uppercase', data: {} } });
    expect(refused.response.status).toBe(400);
    expect(refused.error).toEqual({
      statusCode: 400,
      error: 'Bad Request',
      message: ['data.text must be a string'],
    });
    const health = await taskq.GET('/health');
    expect(health.data?.status).toBe('ok');
  });
});
