import { ServiceUnavailableException } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import type { ApiKeyStore } from '../auth/api-key.store';
import type { DatabaseFileMonitor } from '../persistence/database-file.monitor';
import { QueueDriverRegistry } from '../queue';
import { HEALTH_CHECK_TIMEOUT_MS, HealthController } from './health.controller';

function setUp() {
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
  const dataSource = { query: () => Promise.resolve([{ '?column?': 1 }]) } as unknown as DataSource;
  const driver = (name: string) => registry.allDrivers().get(name)!;
  const keys = { mode: 'open' } as ApiKeyStore;
  return {
    controller: new HealthController(dataSource, registry, keys),
    driver,
    dataSource,
    registry,
    keys,
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
  it('is up when every driver carrying a queue answers', async () => {
    const { controller } = setUp();
    await expect(controller.check()).resolves.toEqual({
      status: 'ok',
      database: 'up',
      queue: 'up',
      auth: 'open',
    });
  });

  it('answers 503 naming a failing driver that is not the default one', async () => {
    const { controller, driver } = setUp();
    jest.spyOn(driver('reports-driver'), 'ping').mockRejectedValue(new Error('connection lost'));
    expect(await failure(controller.check())).toEqual({
      status: 'error',
      database: 'up',
      queue: 'down: reports-driver: connection lost',
      auth: 'open',
    });
  });

  it('answers 503 in bounded time when a driver hangs, naming it', async () => {
    const { controller, driver } = setUp();
    jest.spyOn(driver('default'), 'ping').mockReturnValue(new Promise(() => undefined));
    jest.useFakeTimers();
    try {
      const check = failure(controller.check());
      await jest.advanceTimersByTimeAsync(HEALTH_CHECK_TIMEOUT_MS);
      expect(await check).toEqual({
        status: 'error',
        database: 'up',
        queue: `down: default: ping: no answer within ${HEALTH_CHECK_TIMEOUT_MS} ms`,
      });
    } finally {
      jest.useRealTimers();
    }
  });

  it('ignores a driver that carries no queue', async () => {
    const { controller, driver } = setUp();
    const ping = jest.spyOn(driver('spare'), 'ping').mockRejectedValue(new Error('gone'));
    await expect(controller.check()).resolves.toMatchObject({ status: 'ok', queue: 'up' });
    expect(ping).not.toHaveBeenCalled();
  });

  it('reports the database down once its file is no longer the one at DATABASE_PATH', async () => {
    const { dataSource, registry, keys } = setUp();
    const query = jest.spyOn(dataSource, 'query');
    const gone = 'the database file /srv/tasks.db was deleted while the service had it open';
    const file = { problem: () => gone } as unknown as DatabaseFileMonitor;
    const controller = new HealthController(dataSource, registry, keys, file);
    expect(await failure(controller.check())).toEqual({
      status: 'error',
      database: `down: ${gone}`,
      queue: 'up',
      auth: 'open',
    });
    expect(query).not.toHaveBeenCalled();
  });
});
