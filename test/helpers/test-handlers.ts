import { Injectable, Module } from '@nestjs/common';
import { type TaskContext, TaskHandler } from '../../src/handlers';
import { deferred } from './wait-for';

/** Shared state the tests steer the handlers below with; `reset()` before each test. */
export const probe = {
  gate: deferred(),
  order: [] as string[],
  flakyCalls: 0,
  reset(): void {
    this.gate = deferred();
    this.order = [];
    this.flakyCalls = 0;
  },
};

@Injectable()
class TestHandlers {
  /** Holds its worker until the test opens the gate (or the task is aborted). */
  @TaskHandler('hold')
  async hold(_data: unknown, ctx: TaskContext): Promise<{ output: string }> {
    ctx.progress(50, 'half way');
    await new Promise<void>((resolve, reject) => {
      void probe.gate.promise.then(resolve);
      ctx.signal.addEventListener('abort', () => reject(new Error('aborted')));
    });
    return { output: 'held' };
  }

  /** Ignores its signal entirely: only the worker's own time limit frees the worker. */
  @TaskHandler('stubborn')
  async stubborn(): Promise<never> {
    return new Promise<never>(() => undefined);
  }

  /** Records the order tasks start in. */
  @TaskHandler('record')
  record(data: { name?: string }): { output: string } {
    probe.order.push(String(data.name));
    return { output: String(data.name) };
  }

  /** Fails on its first call ever, succeeds after. */
  @TaskHandler('flaky-once', { maxAttempts: 1 })
  flakyOnce(): { output: string } {
    probe.flakyCalls += 1;
    if (probe.flakyCalls === 1) throw new Error('first call fails');
    return { output: 'fine' };
  }
}

@Module({ providers: [TestHandlers] })
export class TestHandlersModule {}
