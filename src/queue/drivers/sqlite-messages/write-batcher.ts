import { DriverUnavailableError } from '../../errors/driver-unavailable.error';
import { isBusyError, type SqliteShard } from './sqlite-shard';
import { GroupCommit, type Outcome, type RetryLater } from '../../../common/group-commit';
import { failsWholeSqliteBatch } from '../../../common/sqlite-errors';

interface Write {
  run: () => unknown;
  atomic: boolean;
}

/** How long writes keep retrying a file another connection holds locked before giving up. */
const BUSY_GIVE_UP_MS = 30_000;
const MAX_BATCH = 1000;

/**
 * Group commit for one shard: every write submitted in the same event-loop turn runs in one
 * transaction, and each promise resolves only after that transaction commits. Under load a turn
 * collects many settles and publishes, so one commit (one fsync with synchronous=FULL) serves
 * them all; when idle a write waits for nothing but the next turn. A file another connection
 * holds locked is retried with a growing pause, for up to BUSY_GIVE_UP_MS.
 */
export class WriteBatcher {
  private readonly commit: GroupCommit<Write, unknown>;
  private busySince?: number;
  private retryDelayMs = 1;

  constructor(
    private readonly shard: SqliteShard,
    private readonly driverKind: string,
  ) {
    this.commit = new GroupCommit((batch) => this.runBatch(batch), { maxBatch: MAX_BATCH });
  }

  /**
   * Queues `run` for the next commit and resolves with its result after the commit. A write
   * that throws rejects alone; `atomic` puts it under a savepoint so its partial effects go too.
   * If the transaction itself fails, every write in it rejects with DriverUnavailableError.
   */
  submit<T>(run: () => T, atomic = false): Promise<T> {
    return this.commit.submit({ run, atomic }) as Promise<T>;
  }

  /** Resolves once every write submitted so far has committed or failed. */
  drain(): Promise<void> {
    return this.commit.drain();
  }

  private runBatch(batch: Write[]): Outcome<unknown>[] | RetryLater {
    const outcomes: Outcome<unknown>[] = [];
    try {
      this.shard.write(() => {
        for (const write of batch) outcomes.push(this.runOne(write));
      });
    } catch (error) {
      if (isBusyError(error) && this.keepRetrying()) {
        const retryAfterMs = this.retryDelayMs;
        this.retryDelayMs = Math.min(this.retryDelayMs * 2, 100);
        return { retryAfterMs };
      }
      this.busySince = undefined;
      this.retryDelayMs = 1;
      const reason = error instanceof Error ? error.message : String(error);
      throw new DriverUnavailableError(this.driverKind, `${this.shard.path}: ${reason}`, error);
    }
    this.busySince = undefined;
    this.retryDelayMs = 1;
    return outcomes;
  }

  private runOne(write: Write): Outcome<unknown> {
    try {
      return { ok: true, value: write.atomic ? this.shard.atomically(write.run) : write.run() };
    } catch (error) {
      if (failsWholeSqliteBatch(error)) throw error;
      return { ok: false, error };
    }
  }

  private keepRetrying(): boolean {
    const now = Date.now();
    this.busySince ??= now;
    return now - this.busySince < BUSY_GIVE_UP_MS;
  }
}
