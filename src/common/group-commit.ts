/** What one submission ended with: its value, or the error that rejects its caller alone. */
export type Outcome<R> = { ok: true; value: R } | { ok: false; error: unknown };

/** A runner's answer that nothing happened and the whole batch should run again later. */
export interface RetryLater {
  retryAfterMs: number;
}

/**
 * Runs one batch: an outcome per item, in order, or RetryLater. A throw (or a rejection) means
 * the batch as a whole failed and rejects every item in it.
 */
export type BatchRunner<I, R> = (
  items: I[],
) => Outcome<R>[] | RetryLater | Promise<Outcome<R>[] | RetryLater>;

export interface GroupCommitOptions<I> {
  /** Largest batch, in units of `size` (one per item by default). An oversized item goes alone. */
  maxBatch: number;
  size?: (item: I) => number;
  /**
   * The row an item writes. Two items with one key never share a batch, and the later one
   * waits until the earlier one's batch has finished, so writes to one row apply in order.
   */
  key?: (item: I) => string;
  /** Batches running at once; items arriving meanwhile gather for the next one. Default 1. */
  maxInFlight?: number;
}

interface Pending<I, R> {
  item: I;
  resolve: (value: R) => void;
  reject: (error: unknown) => void;
}

/**
 * Group commit: every item submitted in one event-loop turn (or while the batches before it are
 * in flight) goes to the runner together, and each submitter's promise settles with its own
 * outcome once the runner has finished the batch. One commit then serves many callers.
 */
export class GroupCommit<I, R> {
  private pending: Pending<I, R>[] = [];
  private inFlight = 0;
  /** Keys of the items in batches still running. */
  private readonly busy = new Set<string>();
  private scheduled = false;
  /** Set while a batch waits to run again: nothing starts before it. */
  private retryTimer?: NodeJS.Timeout;
  private idle: (() => void)[] = [];
  private readonly size: (item: I) => number;
  private readonly maxInFlight: number;

  constructor(
    private readonly run: BatchRunner<I, R>,
    private readonly options: GroupCommitOptions<I>,
  ) {
    this.size = options.size ?? (() => 1);
    this.maxInFlight = options.maxInFlight ?? 1;
  }

  submit(item: I): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      this.schedule();
    });
  }

  /** Resolves once every item submitted so far has settled. */
  drain(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  private isIdle(): boolean {
    return this.pending.length === 0 && this.inFlight === 0 && !this.scheduled && !this.retryTimer;
  }

  /** The next turn flushes: whatever else is submitted in this one joins the batch. */
  private schedule(): void {
    if (this.scheduled || this.retryTimer || this.inFlight >= this.maxInFlight) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    while (this.pending.length > 0 && this.inFlight < this.maxInFlight && !this.retryTimer) {
      const batch = this.take();
      // Every waiting item's row is in a running batch: that batch's end starts them.
      if (batch.length === 0) break;
      this.start(batch);
    }
    this.notifyIdle();
  }

  private start(batch: Pending<I, R>[]): void {
    this.inFlight += 1;
    let result: ReturnType<BatchRunner<I, R>>;
    try {
      result = this.run(batch.map((entry) => entry.item));
    } catch (error) {
      return this.finish(batch, undefined, error);
    }
    if (result instanceof Promise) {
      result.then(
        (outcomes) => this.finish(batch, outcomes),
        (error: unknown) => this.finish(batch, undefined, error),
      );
    } else {
      this.finish(batch, result);
    }
  }

  /**
   * The next batch: in submission order up to the size bound, skipping items whose key an
   * earlier item still waiting or running holds.
   */
  private take(): Pending<I, R>[] {
    const { key } = this.options;
    const batch: Pending<I, R>[] = [];
    const left: Pending<I, R>[] = [];
    const waiting = new Set<string>();
    let size = 0;
    let full = false;
    for (const entry of this.pending) {
      const k = full ? undefined : key?.(entry.item);
      if (full || (k !== undefined && (this.busy.has(k) || waiting.has(k)))) {
        left.push(entry);
        continue;
      }
      if (k !== undefined) waiting.add(k);
      const grows = this.size(entry.item);
      if (batch.length > 0 && size + grows > this.options.maxBatch) {
        // Later items wait too, so items without a key still run in submission order.
        full = true;
        left.push(entry);
        continue;
      }
      if (k !== undefined) this.busy.add(k);
      size += grows;
      batch.push(entry);
    }
    this.pending = left;
    return batch;
  }

  private finish(
    batch: Pending<I, R>[],
    result: Outcome<R>[] | RetryLater | undefined,
    error?: unknown,
  ): void {
    this.inFlight -= 1;
    const { key } = this.options;
    if (key) for (const entry of batch) this.busy.delete(key(entry.item));
    if (result && !Array.isArray(result)) {
      // Nothing of the batch happened: it goes first again, after the wait asked for.
      this.pending.unshift(...batch);
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(
        () => {
          this.retryTimer = undefined;
          this.flush();
        },
        Math.max(1, result.retryAfterMs),
      );
      return;
    }
    for (let i = 0; i < batch.length; i++) {
      const outcome = result?.[i];
      if (outcome?.ok) batch[i].resolve(outcome.value);
      else batch[i].reject(outcome ? outcome.error : (error ?? new Error('no outcome')));
    }
    if (this.pending.length > 0) this.schedule();
    else this.notifyIdle();
  }

  private notifyIdle(): void {
    if (!this.isIdle()) return;
    for (const resolve of this.idle.splice(0)) resolve();
  }
}
