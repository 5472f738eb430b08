import { DriverUnavailableError } from '../../errors/driver-unavailable.error';
import { isBusyError, type SqliteShard } from './sqlite-shard';
import { failsWholeSqliteBatch } from '../../../common/sqlite-errors';

interface PendingWrite {
  run: () => unknown;
  atomic: boolean;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/** How long writes keep retrying a file another connection holds locked before giving up. */
const BUSY_GIVE_UP_MS = 30_000;
const MAX_BATCH = 1000;

/**
 * Group commit for one shard: every write submitted in the same event-loop turn runs in one
 * transaction, and each promise resolves only after that transaction commits. Under load a turn
 * collects many settles and publishes, so one commit (one fsync with synchronous=FULL) serves
 * them all; when idle a write waits for nothing but the next turn.
 */
export class WriteBatcher {
  private pending: PendingWrite[] = [];
  private scheduled = false;
  private busySince?: number;
  private retryDelayMs = 1;
  private idle: (() => void)[] = [];

  constructor(
    private readonly shard: SqliteShard,
    private readonly driverKind: string,
  ) {}

  /**
   * Queues `run` for the next commit and resolves with its result after the commit. A write
   * that throws rejects alone; `atomic` puts it under a savepoint so its partial effects go too.
   * If the transaction itself fails, every write in it rejects with DriverUnavailableError.
   */
  submit<T>(run: () => T, atomic = false): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ run, atomic, resolve: resolve as (value: unknown) => void, reject });
      this.schedule(0);
    });
  }

  /** Resolves once every write submitted so far has committed or failed. */
  drain(): Promise<void> {
    if (this.pending.length === 0 && !this.scheduled) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  private schedule(delayMs: number): void {
    if (this.scheduled) return;
    this.scheduled = true;
    const run = () => {
      this.scheduled = false;
      this.flush();
    };
    if (delayMs > 0) setTimeout(run, delayMs);
    else setImmediate(run);
  }

  private flush(): void {
    const batch = this.pending.splice(0, MAX_BATCH);
    if (batch.length === 0) return this.notifyIdle();
    const outcomes: Outcome[] = [];
    try {
      this.shard.write(() => {
        for (const write of batch) outcomes.push(this.runOne(write));
      });
    } catch (error) {
      if (isBusyError(error) && this.keepRetrying()) {
        this.pending.unshift(...batch);
        this.schedule(this.retryDelayMs);
        this.retryDelayMs = Math.min(this.retryDelayMs * 2, 100);
        return;
      }
      this.busySince = undefined;
      this.retryDelayMs = 1;
      const reason = error instanceof Error ? error.message : String(error);
      const failure = new DriverUnavailableError(this.driverKind, `${this.shard.path}: ${reason}`);
      for (const write of batch) write.reject(failure);
      return this.afterFlush();
    }
    this.busySince = undefined;
    this.retryDelayMs = 1;
    batch.forEach((write, i) => {
      const outcome = outcomes[i];
      if (outcome.ok) write.resolve(outcome.value);
      else write.reject(outcome.error);
    });
    this.afterFlush();
  }

  private runOne(write: PendingWrite): Outcome {
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

  private afterFlush(): void {
    if (this.pending.length > 0) this.schedule(0);
    else this.notifyIdle();
  }

  private notifyIdle(): void {
    if (this.scheduled || this.pending.length > 0) return;
    for (const resolve of this.idle.splice(0)) resolve();
  }
}
