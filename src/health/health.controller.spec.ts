import { Module, ServiceUnavailableException } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { DataSource } from 'typeorm';
import { ApiKeyStore } from '../auth/api-key.store';
import { DatabaseFileMonitor } from '../persistence/database-file.monitor';
import { PersistenceModule } from '../persistence/persistence.module';
import { QueueDriverRegistry } from '../queue';
import { HEALTH_CHECK_TIMEOUT_MS, HealthController } from './health.controller';
import { HealthModule } from './health.module';
import { ShutdownState } from './shutdown-state';

/** What the database file monitor reports (undefined: the file is the one at DATABASE_PATH). */
let fileProblem: string | undefined;

/** PersistenceModule without a database: only the file monitor the health checks read. */
@Module({
  providers: [{ provide: DatabaseFileMonitor, useValue: { problem: () => fileProblem } }],
  exports: [DatabaseFileMonitor],
})
class FakePersistenceModule {}

async function setUp() {
  fileProblem = undefined;
  const registry = new QueueDriverRegistry({
    drivers: [
      { name: 'default', kind: 'memory' },
      { name: 'reports-driver', kind: 'memory' },
      { name: 'spare', kind: 'memory' },
    ],
    queues: [
      { name: 'tasks', driver: 'default' },
      { name: 'reports', driver: 'reports-driver' },
    ],
    consumerDefaults: {
      concurrency: 1,
      prefetch: 1,
      maxAttempts: 1,
      backoff: { baseMs: 1, maxMs: 1 },
    },
    shutdownTimeoutMs: 0,
  });
  const query = jest.fn(() => Promise.resolve([{ '?column?': 1 }]));
  const moduleRef = await Test.createTestingModule({ imports: [HealthModule] })
    .overrideModule(PersistenceModule)
    .useModule(FakePersistenceModule)
    .useMocker((token) => {
      if (token === DataSource) return { query };
      if (token === QueueDriverRegistry) return registry;
      if (token === ApiKeyStore) return { mode: 'open' };
      return undefined;
    })
    .compile();
  const driver = (name: string) => registry.allDrivers().get(name)!;
  return {
    controller: moduleRef.get(HealthController),
    shutdown: moduleRef.get(ShutdownState),
    driver,
    query,
  };
}

async function failure(check: Promise<unknown>): Promise<unknown> {
  const error: unknown = await check.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ServiceUnavailableException);
  return (error as ServiceUnavailableException).getResponse();
}

describe(HealthController.name, () => {
  describe('GET /health (summary)', () => {
    it('is up when every driver carrying a queue answers', async () => {
      const { controller } = await setUp();
      await expect(controller.check()).resolves.toEqual({
        status: 'ok',
        database: 'up',
        queue: 'up',
        auth: 'open',
      });
    });

    it('answers 503 naming a failing driver that is not the default one', async () => {
      const { controller, driver } = await setUp();
      jest.spyOn(driver('reports-driver'), 'ping').mockRejectedValue(new Error('connection lost'));
      expect(await failure(controller.check())).toEqual({
        status: 'error',
        database: 'up',
        queue: 'down: reports-driver: connection lost',
        auth: 'open',
      });
    });

    it('answers 503 in bounded time when a driver hangs, naming it', async () => {
      const { controller, driver } = await setUp();
      jest.spyOn(driver('default'), 'ping').mockReturnValue(new Promise(() => undefined));
      jest.useFakeTimers();
      try {
        const check = failure(controller.check());
        await jest.advanceTimersByTimeAsync(HEALTH_CHECK_TIMEOUT_MS);
        expect(await check).toMatchObject({
          status: 'error',
          database: 'up',
          queue: `down: default: ping: no answer within ${HEALTH_CHECK_TIMEOUT_MS} ms`,
        });
      } finally {
        jest.useRealTimers();
      }
    });

    it('reports the database down once its file is no longer the one at DATABASE_PATH', async () => {
      const { controller, query } = await setUp();
      fileProblem = 'the database file /srv/tasks.db was deleted while the service had it open';
      expect(await failure(controller.check())).toMatchObject({
        status: 'error',
        database: `down: ${fileProblem}`,
      });
      expect(await failure(controller.ready())).toMatchObject({
        status: 'error',
        error: { database: { status: 'down', message: fileProblem } },
      });
      expect(query).not.toHaveBeenCalled();
    });

    it('ignores a driver that carries no queue', async () => {
      const { controller, driver } = await setUp();
      const ping = jest.spyOn(driver('spare'), 'ping').mockRejectedValue(new Error('gone'));
      await expect(controller.check()).resolves.toMatchObject({ status: 'ok', queue: 'up' });
      expect(ping).not.toHaveBeenCalled();
    });
  });

  describe('GET /health/ready', () => {
    it('lists the database and each driver carrying a queue, with its queues', async () => {
      const { controller } = await setUp();
      const result = await controller.ready();
      expect(result.status).toBe('ok');
      expect(result.info).toMatchObject({
        database: { status: 'up' },
        'driver:default': { status: 'up', kind: 'memory', queues: ['tasks'] },
        'driver:reports-driver': { status: 'up', kind: 'memory', queues: ['reports'] },
      });
      expect(Object.keys(result.info!)).not.toContain('driver:spare');
    });

    it('answers 503 naming the driver that does not answer', async () => {
      const { controller, driver } = await setUp();
      jest.spyOn(driver('reports-driver'), 'ping').mockRejectedValue(new Error('connection lost'));
      expect(await failure(controller.ready())).toMatchObject({
        status: 'error',
        error: { 'driver:reports-driver': { status: 'down', message: 'connection lost' } },
        info: { database: { status: 'up' }, 'driver:default': { status: 'up' } },
      });
    });

    it('answers 503 naming the database when it does not answer', async () => {
      const { controller, query } = await setUp();
      query.mockRejectedValue(new Error('SQLITE_BUSY'));
      expect(await failure(controller.ready())).toMatchObject({
        status: 'error',
        error: { database: { status: 'down', message: 'SQLITE_BUSY' } },
      });
    });

    it('answers 503 shutting_down once shutdown began, without asking anything', async () => {
      const { controller, shutdown, query } = await setUp();
      shutdown.begin();
      expect(await failure(controller.ready())).toEqual({ status: 'shutting_down' });
      expect(query).not.toHaveBeenCalled();
      // The liveness probe still answers: the process is alive while it drains.
      expect(controller.live()).toEqual({ status: 'ok' });
    });
  });
});
