import {
  type BeforeApplicationShutdown,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { RepeatLog } from '../common/repeat-log';
import type { AppConfig } from '../config/app.config';
import { InjectAppConfig } from '../config/inject-app-config.decorator';
import { backoffDelay } from '../queue/backoff';
import { TaskResponseDto } from '../tasks/dto/task.response.dto';
import { TaskEvents } from '../tasks/task-events.service';
import { TERMINAL_STATUSES } from '../persistence/task-status.enum';
import { TaskMetrics } from '../observability/metrics';
import { sendCallback } from './callback-sender';
import { CallbackAddressError } from './callback-url';
import { type ClaimedCallback, TaskStatements } from '../persistence/task-statements';

/** How often the table is read for due callbacks when nothing wakes the dispatcher sooner. */
const POLL_MS = 1_000;
/**
 * Terminal events wake the loop at most this often: under load thousands of tasks finish per
 * second, nearly all without a callback, and one look for due callbacks covers them all.
 */
const EVENT_WAKE_MS = 20;
/** Callbacks one process sends at once. */
const MAX_IN_FLIGHT = 16;
/** A claim outlives the send's timeout by this much, then another process may take it over. */
const LEASE_MARGIN_MS = 30_000;
const SHUTDOWN_ERROR = 'interrupted by shutdown';

/**
 * Sends result callbacks, their delivery state kept in the task row. The update that
 * makes a task terminal also marks its callback `pending` and due, so the callback is in the
 * table before anybody tries to send it; this dispatcher (worker roles) picks due ones,
 * POSTs the task's JSON (as `GET /tasks/:id` shows it) signed with `CALLBACK_SECRET`, and records
 * `delivered`, or retries with exponential backoff up to `CALLBACK_MAX_ATTEMPTS`, then `failed`.
 *
 * It wakes at once when this process finishes a task and otherwise reads the table every second,
 * so callbacks of tasks finished elsewhere, or before a restart, are sent too. Each attempt is
 * claimed with a conditional update that counts it and leases the row, so two processes never
 * send one callback at the same moment; a process that dies mid-send leaves the row to be taken
 * over once the lease ends. Delivery is therefore at least once: receivers should treat the
 * task id (`X-Taskq-Task-Id`) and status as the key of what they received.
 */
@Injectable()
export class CallbackDispatcher implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(CallbackDispatcher.name);
  /** A database away fails every poll alike: one line per interval, counted. */
  private readonly readFailures = new RepeatLog((line) => this.logger.error(line));
  private readonly inFlight = new Set<Promise<void>>();
  /** Aborts the sends still running when shutdown stops waiting for them. */
  private readonly shutdown = new AbortController();
  private loop?: Promise<void>;
  private stopping = false;
  private woken = false;
  private wakeUp?: () => void;
  private unsubscribe?: () => void;
  private eventWake?: NodeJS.Timeout;

  constructor(
    @InjectAppConfig() private readonly config: AppConfig,
    private readonly store: TaskStatements,
    private readonly events: TaskEvents,
    private readonly metrics: TaskMetrics,
  ) {}

  onApplicationBootstrap(): void {
    this.unsubscribe = this.events.subscribe((event) => {
      if (event.type !== 'status' || !TERMINAL_STATUSES.includes(event.status)) return;
      this.eventWake ??= setTimeout(() => {
        this.eventWake = undefined;
        this.wake();
      }, EVENT_WAKE_MS).unref();
    });
    this.loop = this.run();
  }

  /** Stops looking for callbacks and waits for the sends in flight (up to SHUTDOWN_TIMEOUT_MS). */
  async beforeApplicationShutdown(): Promise<void> {
    if (!this.loop) return;
    this.stopping = true;
    this.unsubscribe?.();
    clearTimeout(this.eventWake);
    this.wake();
    await this.loop;
    if (this.inFlight.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const timeUp = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.config.shutdownTimeoutMs);
    });
    await Promise.race([Promise.allSettled([...this.inFlight]), timeUp]);
    clearTimeout(timer);
    if (this.inFlight.size > 0) {
      // The rows are put back as due, so the next process sends them again at once.
      this.shutdown.abort(new Error(SHUTDOWN_ERROR));
      await Promise.allSettled([...this.inFlight]);
    }
  }

  /** Looks for due callbacks now instead of at the next poll. */
  wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      this.woken = false;
      let more = false;
      const free = MAX_IN_FLIGHT - this.inFlight.size;
      if (free > 0) {
        try {
          more = (await this.startDue(free)) === free;
        } catch (error) {
          const line = `reading due callbacks failed: ${(error as Error).message}`;
          this.readFailures.report(line, line);
        }
      }
      if (this.stopping) break;
      if (!more && !this.woken) await this.sleep(POLL_MS);
    }
  }

  /** Claims up to `limit` due callbacks and starts sending them; returns how many were due. */
  private async startDue(limit: number): Promise<number> {
    const due = await this.store.dueCallbacks(Date.now(), limit);
    for (const task of due) {
      if (this.stopping) break;
      if (task.callbackAttempts >= this.config.callback.maxAttempts) {
        // Its last attempt was claimed by a process that died (or shut down) before the answer.
        await this.store.abandonCallback(
          task,
          task.callbackError ?? 'the last attempt did not finish',
        );
        continue;
      }
      const claimed = await this.store.claimCallback(
        task,
        Date.now() + this.config.callback.timeoutMs + LEASE_MARGIN_MS,
      );
      if (!claimed) continue;
      const sending = this.deliver(claimed).finally(() => {
        this.inFlight.delete(sending);
        this.wake();
      });
      this.inFlight.add(sending);
    }
    return due.length;
  }

  private async deliver(claimed: ClaimedCallback): Promise<void> {
    const { task, attempt } = claimed;
    const { timeoutMs, secret, allowPrivate } = this.config.callback;
    try {
      try {
        await sendCallback({
          url: task.callbackUrl ?? '',
          taskId: task.id,
          body: JSON.stringify(TaskResponseDto.from(task)),
          secret,
          allowPrivate,
          signal: AbortSignal.any([AbortSignal.timeout(timeoutMs), this.shutdown.signal]),
        });
      } catch (error) {
        if (!this.shutdown.signal.aborted) {
          this.metrics.callbacksFailed.inc({ queue: task.queue, action: task.action });
        }
        // A refusal by the address policy is final: another attempt would be refused alike.
        await this.failed(claimed, (error as Error).message, error instanceof CallbackAddressError);
        return;
      }
      this.metrics.callbacksDelivered.inc({ queue: task.queue, action: task.action });
      await this.store.settleCallback(claimed, { status: 'delivered', error: null, nextAt: null });
      this.logger.debug(`callback of task ${task.id} delivered (attempt ${attempt})`);
    } catch (error) {
      // The database went away (shutdown); the lease runs out and the callback is sent later.
      this.logger.error(
        `recording the callback of task ${task.id} failed: ${(error as Error).message}`,
      );
    }
  }

  private async failed(claimed: ClaimedCallback, message: string, final = false): Promise<void> {
    const { task, attempt } = claimed;
    const error = message.slice(0, 1000);
    if (this.shutdown.signal.aborted && !final) {
      await this.store.settleCallback(claimed, { status: 'pending', error, nextAt: Date.now() });
    } else if (final || attempt >= this.config.callback.maxAttempts) {
      await this.store.settleCallback(claimed, { status: 'failed', error, nextAt: null });
      this.logger.warn(`callback of task ${task.id} failed after ${attempt} attempt(s): ${error}`);
    } else {
      const delay = backoffDelay(attempt, {
        baseMs: this.config.task.backoffMs,
        maxMs: this.config.task.backoffMaxMs,
      });
      await this.store.settleCallback(claimed, {
        status: 'pending',
        error,
        nextAt: Date.now() + delay,
      });
      // A retry due before the next poll is looked for when it is due.
      if (delay < POLL_MS) setTimeout(() => this.wake(), delay + 1).unref();
      this.logger.debug(`callback of task ${task.id} attempt ${attempt} failed: ${error}`);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      timer.unref();
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wakeUp = () => {
        this.wakeUp = undefined;
        done();
      };
    });
  }
}
