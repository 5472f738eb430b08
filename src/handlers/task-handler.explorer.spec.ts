import { Injectable, Module, Scope } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { Test } from '@nestjs/testing';
import { QueueDriverRegistry } from '../queue';
import { QUEUE_MODULE_OPTIONS } from '../queue/queue.module-definition';
import { DuplicateTaskHandlerError } from './errors/duplicate-task-handler.error';
import { InvalidTaskHandlerError } from './errors/invalid-task-handler.error';
import { FALLBACK_ACTION, TaskHandler } from './task-handler.decorator';
import { TaskHandlerExplorer } from './task-handler.explorer';

@Injectable()
class Greeter {
  constructor() {}
  private readonly greeting = 'hello';

  @TaskHandler('greet', { maxAttempts: 7 })
  greet(data: { name: string }) {
    return `${this.greeting} ${data.name}`;
  }

  notAHandler() {
    return 'ignored';
  }
}

@Injectable()
class OtherGreeter {
  @TaskHandler('greet')
  greet() {
    return 'again';
  }
}

@Injectable()
class Fallback {
  @TaskHandler(FALLBACK_ACTION)
  any() {
    return 'fallback';
  }
}

@Injectable()
class Reporter {
  @TaskHandler('report', { queue: 'reports' })
  report() {
    return 'done';
  }
}

@Injectable({ scope: Scope.REQUEST })
class PerRequest {
  @TaskHandler('scoped')
  run() {
    return 1;
  }
}

async function explore(...providers: (new (...args: never[]) => object)[]) {
  const queues = {
    drivers: [{ name: 'default', kind: 'memory' }],
    queues: [{ name: 'tasks', driver: 'default' }],
  };
  @Module({
    imports: [DiscoveryModule],
    providers: [
      TaskHandlerExplorer,
      QueueDriverRegistry,
      { provide: QUEUE_MODULE_OPTIONS, useValue: queues },
      ...providers,
    ],
  })
  class TestModule {}
  const moduleRef = await Test.createTestingModule({ imports: [TestModule] }).compile();
  await moduleRef.init();
  return { sut: moduleRef.get(TaskHandlerExplorer), moduleRef };
}

describe(TaskHandlerExplorer.name, () => {
  it('discovers decorated methods bound to their instance, with their options', async () => {
    const { sut, moduleRef } = await explore(Greeter);
    const handler = sut.resolve('greet')!;
    expect(handler).toMatchObject({ action: 'greet', label: 'Greeter.greet', maxAttempts: 7 });
    expect(handler.fn({ name: 'ada' }, {} as never)).toBe('hello ada');
    expect(sut.actions()).toEqual(['greet']);
    expect(sut.resolve('notAHandler')).toBeUndefined();
    await moduleRef.close();
  });

  it('falls back to the "*" handler for unknown actions', async () => {
    const { sut, moduleRef } = await explore(Greeter, Fallback);
    expect(sut.resolve('anything')?.label).toBe('Fallback.any');
    expect(sut.resolve('greet')?.label).toBe('Greeter.greet');
    expect(sut.actions()).toEqual(['greet']);
    await moduleRef.close();
  });

  it('fails the boot naming both handlers of a duplicate action', async () => {
    await expect(explore(Greeter, OtherGreeter)).rejects.toThrow(
      new DuplicateTaskHandlerError('greet', 'Greeter.greet', 'OtherGreeter.greet'),
    );
  });

  it('declares the queue a handler names, on the default driver', async () => {
    const { sut, moduleRef } = await explore(Reporter);
    const registry = moduleRef.get(QueueDriverRegistry);
    expect(sut.resolve('report')).toMatchObject({ queue: 'reports' });
    expect(registry.queueNames()).toEqual(['tasks', 'reports']);
    expect(registry.driverFor('reports')).toBe(registry.defaultDriver);
    await moduleRef.close();
  });

  it('fails the boot for a handler on a request-scoped provider', async () => {
    await expect(explore(PerRequest)).rejects.toThrow(InvalidTaskHandlerError);
  });
});
