import { type CanActivate, type ExecutionContext, Injectable, Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { startTestApp, tempDir, type TestApp } from '../helpers/create-test-app';
import { openSse } from '../helpers/sse-client';

/** Stands in for authentication: names the actor from a header, as the API-key guard does. */
@Injectable()
class ActorFromHeader implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest<{
      headers: Record<string, string | undefined>;
      actor?: unknown;
    }>();
    const keyName = request.headers['x-test-actor'];
    if (keyName) request.actor = { keyName, tenant: 't', scopes: [], actions: [] };
    return true;
  }
}

@Module({ providers: [{ provide: APP_GUARD, useClass: ActorFromHeader }] })
class ActorModule {}

describe.each(['express', 'fastify'] as const)('HTTP limits and headers on %s', (adapter) => {
  const dir = tempDir();
  const apps: TestApp[] = [];
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((t) => t.close()));
  });
  afterAll(() => dir.remove());

  async function start(
    env: Record<string, string> = {},
    modules = [ActorModule],
  ): Promise<TestApp> {
    const t = await startTestApp({
      adapter,
      dbPath: join(dir.path, `${apps.length}.db`),
      env,
      modules,
    });
    apps.push(t);
    return t;
  }

  it('sends security headers and no X-Powered-By, on answers, errors and streams', async () => {
    const t = await start();
    for (const res of [
      await t.http.get('/tasks').expect(200),
      await t.http.get('/tasks/not-a-task').expect(404),
      await t.http.post('/tasks').send({ nope: 1 }).expect(400),
    ]) {
      expect(res.headers['x-powered-by']).toBeUndefined();
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.headers['x-frame-options']).toBe('SAMEORIGIN');
      expect(res.headers['content-security-policy']).toMatch(/default-src 'self'/);
      expect(res.headers['strict-transport-security']).toMatch(/max-age=/);
    }
    await t.app.listen(0, '127.0.0.1');
    const { port } = t.app.getHttpServer().address() as AddressInfo;
    const stream = await openSse(`http://127.0.0.1:${port}/tasks/events`);
    stream.close();
    expect(stream.status).toBe(200);
    expect(stream.headers['x-content-type-options']).toBe('nosniff');
    expect(stream.headers['x-powered-by']).toBeUndefined();
  });

  it('answers no CORS headers unless CORS_ORIGINS allows the origin', async () => {
    const closed = await start();
    const plain = await closed.http.get('/tasks').set('Origin', 'https://evil.example').expect(200);
    expect(plain.headers['access-control-allow-origin']).toBeUndefined();
    const preflight = await closed.http
      .options('/tasks')
      .set('Origin', 'https://evil.example')
      .set('Access-Control-Request-Method', 'POST');
    expect(preflight.headers['access-control-allow-origin']).toBeUndefined();

    const open = await start({ CORS_ORIGINS: 'https://app.example.com' });
    const allowed = await open.http
      .get('/tasks')
      .set('Origin', 'https://app.example.com')
      .expect(200);
    expect(allowed.headers['access-control-allow-origin']).toBe('https://app.example.com');
    const other = await open.http.get('/tasks').set('Origin', 'https://evil.example').expect(200);
    expect(other.headers['access-control-allow-origin']).not.toBe('https://evil.example');
  });

  it('answers 429 with Retry-After past RATE_LIMIT requests, across routes, never on /health', async () => {
    const t = await start({ RATE_LIMIT: '3', RATE_LIMIT_WINDOW_MS: '60000' });
    await t.http.get('/tasks').expect(200);
    await t.http.get('/queues').expect(200);
    await t.http
      .post('/tasks')
      .send({ action: 'uppercase', data: { text: 'x' } })
      .expect(202);
    const limited = await t.http.get('/tasks').expect(429);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expect(limited.body).toEqual({
      statusCode: 429,
      error: 'Too Many Requests',
      message: 'too many requests from this client; see Retry-After',
    });
    await t.http
      .post('/tasks')
      .send({ action: 'uppercase', data: { text: 'x' } })
      .expect(429);
    for (let i = 0; i < 10; i++) await t.http.get('/health').expect(200);
  });

  it("counts a request with an actor against its key, not its address, whatever the guards' order", async () => {
    const t = await start({ RATE_LIMIT: '2', RATE_LIMIT_WINDOW_MS: '60000' });
    for (let i = 0; i < 2; i++) await t.http.get('/tasks').set('X-Test-Actor', 'ci').expect(200);
    await t.http.get('/tasks').set('X-Test-Actor', 'ci').expect(429);
    // Same address, another key: a budget of its own; and the anonymous address one of its own.
    await t.http.get('/tasks').set('X-Test-Actor', 'other').expect(200);
    await t.http.get('/tasks').expect(200);
    await t.http.get('/tasks').expect(200);
    await t.http.get('/tasks').expect(429);
  });

  it('does not limit with RATE_LIMIT=0', async () => {
    const t = await start({ RATE_LIMIT: '0' });
    for (let i = 0; i < 20; i++) await t.http.get('/tasks').expect(200);
  });
});
