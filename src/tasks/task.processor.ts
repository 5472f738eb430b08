import { Injectable, Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import {
  type Delivery,
  type FailureDecision,
  type MessageProcessor,
  MAX_ATTEMPTS_HEADER,
  NonRetryableError,
} from '../queue';
import type { TaskContext } from './task-context.interface';
import { TaskHandlerExplorer } from './task-handler.explorer';
import type { TaskMessage } from './task-message.interface';
import { TaskStore } from './task.store';

/** Progress writes per task are at most this frequent; the last value always lands. */
const PROGRESS_INTERVAL_MS = 250;

/**
 * Turns a queue delivery into a handler call and a recorded outcome:
 * claim the row (fenced) → run the handler → record result or failure → only then settle.
 */
@Injectable()
export class TaskProcessor implements MessageProcessor<TaskMessage> {
  private readonly logger = new Logger(TaskProcessor.name);
  /** The fencing token each delivery claimed its row with. */
  private readonly tokens = new WeakMap<Delivery<TaskMessage>, string>();
  /** Deliveries that found nothing to claim (duplicates or stale), acked and skipped. */
  duplicates = 0;
  /** Outcomes not recorded because the claim had been lost meanwhile. */
  lostClaims = 0;

  constructor(
    private readonly store: TaskStore,
    private readonly explorer: TaskHandlerExplorer,
  ) {}

  async process(delivery: Delivery<TaskMessage>, signal: AbortSignal): Promise<void> {
    const { taskId, action, data } = delivery.body;
    const token = randomUUID();
    const claimed = await this.store.claim(
      taskId,
      delivery.attempt,
      token,
      delivery.deliveryCount > 1,
    );
    if (!claimed) {
      this.duplicates += 1;
      this.logger.debug(`task ${taskId}: delivery ${delivery.id} has nothing to claim; skipped`);
      return;
    }
    this.tokens.set(delivery, token);

    const handler = this.explorer.resolve(action);
    if (!handler) {
      throw new NonRetryableError(`no handler for action "${action}"`);
    }
    const maxAttempts = Number(delivery.headers[MAX_ATTEMPTS_HEADER]) || delivery.attempt;
    const ctx: TaskContext = {
      taskId,
      action,
      attempt: delivery.attempt,
      maxAttempts,
      signal,
      progress: this.progressReporter(taskId, token),
    };
    const result = await handler.fn(data, ctx);
    if (!(await this.store.complete(taskId, token, result))) {
      this.lostClaims += 1;
      this.logger.warn(`task ${taskId}: claim lost before completion; result discarded`);
    }
  }

  async onFailure(
    delivery: Delivery<TaskMessage>,
    error: unknown,
    decision: FailureDecision,
  ): Promise<void> {
    const { taskId, action } = delivery.body;
    const token = this.tokens.get(delivery);
    const message = error instanceof Error ? error.message : String(error);
    if (decision.kind === 'dead') {
      this.logger.error(
        `task ${taskId} (${action}) failed for good on attempt ${delivery.attempt}: ${message}`,
        error instanceof Error ? error.stack : undefined,
      );
    }
    // Without a token the row was never claimed (the claim itself failed): nothing to record.
    if (token && !(await this.store.fail(taskId, token, message, decision.kind === 'dead'))) {
      this.lostClaims += 1;
    }
  }

  private progressReporter(taskId: string, token: string): (percent: number) => void {
    let last = 0;
    let pending: number | undefined;
    let timer: NodeJS.Timeout | undefined;
    const write = (percent: number): void => {
      last = Date.now();
      this.store.progress(taskId, token, percent).catch((error: unknown) => {
        this.logger.warn(`task ${taskId}: progress not stored: ${(error as Error).message}`);
      });
    };
    return (percent: number) => {
      const value = Math.max(0, Math.min(100, Math.round(Number(percent) || 0)));
      const wait = last + PROGRESS_INTERVAL_MS - Date.now();
      if (wait <= 0) return write(value);
      pending = value;
      timer ??= setTimeout(() => {
        timer = undefined;
        if (pending !== undefined) write(pending);
        pending = undefined;
      }, wait);
      timer.unref();
    };
  }
}
