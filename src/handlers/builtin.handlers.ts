import { Injectable } from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TaskContext } from './task-context.interface';
import { FALLBACK_ACTION, TaskHandler } from './task-handler.decorator';
import { FailData, SleepData, SumData, UppercaseData } from './handler-data.dto';

/** The tutorial's handlers, plus `sleep` and `fail` for demos and tests. */
@Injectable()
export class BuiltinHandlers {
  @TaskHandler('uppercase', { dataType: UppercaseData })
  uppercase(data: UppercaseData): { output: string } {
    return { output: data.text.toUpperCase() };
  }

  @TaskHandler('sum', { dataType: SumData })
  sum(data: SumData): { output: number } {
    return { output: data.numbers.reduce((total, n) => total + n, 0) };
  }

  /**
   * Sleeps `data.ms` in `data.steps` parts (default 1), reporting progress after each; stops at
   * once when the signal aborts.
   */
  @TaskHandler('sleep', { dataType: SleepData })
  async sleep(data: SleepData, ctx: TaskContext): Promise<{ output: string; sleptMs: number }> {
    const steps = data.steps ?? 1;
    for (let step = 1; step <= steps; step += 1) {
      await sleep(
        Math.round((data.ms * step) / steps) - Math.round((data.ms * (step - 1)) / steps),
        undefined,
        {
          signal: ctx.signal,
        },
      );
      ctx.progress(
        Math.round((100 * step) / steps),
        steps > 1 ? `step ${step} of ${steps}` : undefined,
      );
    }
    return { output: 'slept', sleptMs: data.ms };
  }

  /** Throws on the first `data.times` attempts (default: every attempt), then succeeds. */
  @TaskHandler('fail', { dataType: FailData })
  fail(data: FailData, ctx: TaskContext): { output: string; attempts: number } {
    if (data.times === undefined || ctx.attempt <= data.times) {
      throw new Error(data.message ?? `failing on purpose (attempt ${ctx.attempt})`);
    }
    return { output: 'recovered', attempts: ctx.attempt };
  }

  /** Any other action: the tutorial's else-branch. */
  @TaskHandler(FALLBACK_ACTION)
  fallback(): { output: string } {
    return { output: 'processed' };
  }
}
