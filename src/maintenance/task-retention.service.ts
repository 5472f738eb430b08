import {
  type BeforeApplicationShutdown,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import type { AppConfig } from '../config/app.config';
import { InjectAppConfig } from '../config/inject-app-config.decorator';
import { TaskStatements } from '../persistence/task-statements';

const DAY_MS = 24 * 60 * 60 * 1000;
/** Rows per DELETE: each statement is its own short transaction. */
export const RETENTION_BATCH = 500;
/** The first sweep runs this long after start-up, out of the way of recovery. */
const FIRST_SWEEP_MS = 2_000;
const SWEEP_EVERY_MS = 5 * 60 * 1000;

/**
 * Retention: deletes terminal tasks (completed, failed, cancelled) that
 * finished more than `TASK_RETENTION_DAYS` days ago, shortly after start-up and then every five
 * minutes; 0 keeps every task. A task whose result callback is still pending is kept until the
 * callback is delivered or has failed. Rows go in batches of {@link RETENTION_BATCH}, one short
 * statement each, so writers are never held up long; several processes sweeping at once only
 * delete the same rows once.
 */
@Injectable()
export class TaskRetentionService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(TaskRetentionService.name);
  private timer?: NodeJS.Timeout;
  private sweeping?: Promise<number>;
  private stopping = false;

  constructor(
    @InjectAppConfig() private readonly config: AppConfig,
    private readonly store: TaskStatements,
  ) {}

  onApplicationBootstrap(): void {
    if (this.config.task.retentionDays === 0) return;
    this.schedule(FIRST_SWEEP_MS);
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.timer);
    await this.sweeping?.catch(() => undefined);
  }

  /**
   * Deletes every terminal task that finished before `now - TASK_RETENTION_DAYS`, batch by
   * batch, until none is left (or shutdown begins). Returns how many were deleted.
   */
  sweep(now = Date.now()): Promise<number> {
    this.sweeping ??= this.deleteExpired(now).finally(() => (this.sweeping = undefined));
    return this.sweeping;
  }

  private schedule(delayMs: number): void {
    if (this.stopping) return;
    this.timer = setTimeout(() => {
      this.sweep().then(
        () => this.schedule(SWEEP_EVERY_MS),
        (error: Error) => {
          this.logger.error(`deleting old tasks failed: ${error.message}`);
          this.schedule(SWEEP_EVERY_MS);
        },
      );
    }, delayMs);
    this.timer.unref();
  }

  private async deleteExpired(now: number): Promise<number> {
    const days = this.config.task.retentionDays;
    if (days === 0) return 0;
    const cutoff = now - days * DAY_MS;
    let deleted = 0;
    while (!this.stopping) {
      const batch = await this.store.deleteExpired(cutoff, RETENTION_BATCH);
      deleted += batch;
      if (batch < RETENTION_BATCH) break;
    }
    if (deleted > 0) {
      this.logger.log(`deleted ${deleted} task(s) that finished more than ${days} day(s) ago`);
    }
    return deleted;
  }
}
