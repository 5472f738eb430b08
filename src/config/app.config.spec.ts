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
