import { resolve } from 'node:path';
import { ConfigError, loadConfig } from './app.config';

describe(loadConfig.name, () => {
  it('has the documented defaults', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      port: 8080,
      role: 'all',
      httpAdapter: 'express',
      databasePath: resolve('./data/tasks.db'),
      migrationsRun: true,
      worker: { concurrency: 2, prefetch: 5 },
      task: { maxAttempts: 3 },
      shutdownTimeoutMs: 10_000,
    });
  });

  it('listens on loopback, with CORS off and the documented limits, unless told', () => {
    expect(loadConfig({})).toMatchObject({
      host: '127.0.0.1',
      corsOrigins: [],
      eventStream: { maxConnections: 1000, maxConnectionsPerClient: 10, maxBufferBytes: 262144 },
      rateLimit: { limit: 1000, windowMs: 1000 },
    });
    expect(
      loadConfig({
        HOST: '0.0.0.0',
        CORS_ORIGINS: 'https://a.example.com, http://b.example:8080',
        SSE_MAX_CONNECTIONS: '5',
        SSE_MAX_CONNECTIONS_PER_CLIENT: '2',
        SSE_MAX_BUFFER_BYTES: '4096',
        RATE_LIMIT: '0',
      }),
    ).toMatchObject({
      host: '0.0.0.0',
      corsOrigins: ['https://a.example.com', 'http://b.example:8080'],
      eventStream: { maxConnections: 5, maxConnectionsPerClient: 2, maxBufferBytes: 4096 },
      rateLimit: { limit: 0 },
    });
    expect(() => loadConfig({ CORS_ORIGINS: 'evil.example' })).toThrow(
      /CORS_ORIGINS=evil.example is invalid/,
    );
  });

  it('says which setting chose the database file, and reads DATABASE_CHECK', () => {
    expect(loadConfig({})).toMatchObject({ databasePathFrom: 'default', databaseCheck: 'quick' });
    expect(loadConfig({ DATABASE_PATH: '/srv/q.db', DATABASE_CHECK: 'full' })).toMatchObject({
      databasePath: '/srv/q.db',
      databasePathFrom: 'DATABASE_PATH',
      databaseCheck: 'full',
    });
    expect(() => loadConfig({ DATABASE_CHECK: 'fast' })).toThrow(
      'DATABASE_CHECK=fast is invalid: expected one of quick, full, off',
    );
  });

  it('reads typed values', () => {
    const config = loadConfig({
      PORT: '9000',
      HTTP_ADAPTER: 'fastify',
      MIGRATIONS_RUN: 'false',
      WORKER_CONCURRENCY: '1000',
      WORKER_PREFETCH: '10000',
      TASK_MAX_ATTEMPTS: '5',
      SHUTDOWN_TIMEOUT_MS: '0',
      QUEUE_DRIVER: 'memory',
    });
    expect(config).toMatchObject({
      port: 9000,
      httpAdapter: 'fastify',
      migrationsRun: false,
      worker: { concurrency: 1000, prefetch: 10000 },
      task: { maxAttempts: 5 },
      shutdownTimeoutMs: 0,
    });
  });

  it.each([
    ['PORT', 'abc', 'PORT=abc is invalid: expected an integer from 0 to 65535'],
    ['PORT', '70000', 'PORT=70000 is invalid: expected an integer from 0 to 65535'],
    [
      'WORKER_CONCURRENCY',
      '0',
      'WORKER_CONCURRENCY=0 is invalid: expected an integer from 1 to 1000',
    ],
    [
      'WORKER_CONCURRENCY',
      '1001',
      'WORKER_CONCURRENCY=1001 is invalid: expected an integer from 1 to 1000',
    ],
    [
      'WORKER_PREFETCH',
      '10001',
      'WORKER_PREFETCH=10001 is invalid: expected an integer from 1 to 10000',
    ],
    [
      'WORKER_PREFETCH',
      '2.5',
      'WORKER_PREFETCH=2.5 is invalid: expected an integer from 1 to 10000',
    ],
    ['APP_ROLE', 'boss', 'APP_ROLE=boss is invalid: expected one of all, api, worker'],
    ['HTTP_ADAPTER', 'koa', 'HTTP_ADAPTER=koa is invalid: expected one of express, fastify'],
    ['MIGRATIONS_RUN', 'maybe', 'MIGRATIONS_RUN=maybe is invalid: expected true or false'],
    [
      'QUEUE_NAME',
      'has space',
      "QUEUE_NAME=has space is invalid: expected 1-64 letters, digits, '_', '.', ':' or '-'",
    ],
  ])('rejects %s=%s with one line naming it', (key, value, message) => {
    expect(() => loadConfig({ [key]: value })).toThrow(new ConfigError(message));
  });

  it('treats empty values as unset', () => {
    expect(loadConfig({ PORT: '', APP_ROLE: '  ' })).toMatchObject({ port: 8080, role: 'all' });
  });
});

describe('broker and database URLs', () => {
  it('has loopback defaults', () => {
    expect(loadConfig({}).queue).toMatchObject({
      redis: { url: 'redis://127.0.0.1:6379' },
      amqp: { url: 'amqp://guest:guest@127.0.0.1:5672' },
    });
    expect(loadConfig({}).databaseUrl).toBeUndefined();
  });

  it('requires a durable Redis unless told otherwise', () => {
    expect(loadConfig({}).queue.redis).toMatchObject({
      allowVolatile: false,
      appendfsync: 'everysec',
    });
    expect(
      loadConfig({ REDIS_ALLOW_VOLATILE: 'true', REDIS_APPENDFSYNC: 'always' }).queue.redis,
    ).toMatchObject({ allowVolatile: true, appendfsync: 'always' });
    expect(() => loadConfig({ REDIS_APPENDFSYNC: 'sometimes' })).toThrow(
      'REDIS_APPENDFSYNC=sometimes is invalid: expected one of always, everysec, no',
    );
  });

  it('never repeats a password in an error', () => {
    const load = () => loadConfig({ AMQP_URL: 'http://user:hunter2@host' });
    expect(load).toThrow('AMQP_URL=http://***@host/ is invalid');
    expect(load).not.toThrow(/hunter2/);
    expect(() => loadConfig({ DATABASE_URL: 'mysql://u:hunter2@h/db' })).toThrow(
      'DATABASE_URL=mysql://***@h/db is invalid',
    );
  });

  it('accepts a postgres URL', () => {
    expect(loadConfig({ DATABASE_URL: 'postgres://127.0.0.1:5432/test' }).databaseUrl).toBe(
      'postgres://127.0.0.1:5432/test',
    );
  });

  it('reads the observability settings', () => {
    expect(loadConfig({}).observability).toEqual({
      metricsEnabled: true,
      logFormat: 'auto',
      otlpEndpoint: undefined,
    });
    expect(
      loadConfig({
        METRICS_ENABLED: 'false',
        LOG_FORMAT: 'json',
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
      }).observability,
    ).toEqual({ metricsEnabled: false, logFormat: 'json', otlpEndpoint: 'http://collector:4318' });
    expect(() => loadConfig({ LOG_FORMAT: 'xml' })).toThrow(
      'LOG_FORMAT=xml is invalid: expected one of auto, json, pretty',
    );
  });
});
