import type { ConsumeOptions } from '../interfaces/queue-driver.interface';

/**
 * The prefetch credit of one consumer, for drivers that bound their consumers themselves (the
 * broker does not): how many deliveries it holds unsettled against its prefetch, whether it is
 * paused or cancelled, and when a refill is worth a fetch. The driver keeps which deliveries
 * are held (receipts) and calls `take` and `give` once per delivery; this class only counts.
 */
export class ConsumerCredit {
  readonly prefetch: number;
  /** Refill once holding at most this many (ConsumeOptions.lowWater, within 0..prefetch-1). */
  readonly lowWater: number;
  private held = 0;
  private paused = false;
  private cancelled = false;

  constructor({ prefetch, lowWater }: ConsumeOptions) {
    this.prefetch = prefetch;
    this.lowWater = Math.min(prefetch - 1, Math.max(0, lowWater ?? prefetch));
  }

  /** Deliveries handed out and not yet settled. */
  get unsettled(): number {
    return this.held;
  }

  /** How many more it may take now: none while paused or cancelled. */
  get room(): number {
    return this.paused || this.cancelled ? 0 : Math.max(0, this.prefetch - this.held);
  }

  get hasRoom(): boolean {
    return !this.paused && !this.cancelled && this.held < this.prefetch;
  }

  /**
   * Down to the low-water mark with room to fill: a fetch now gets a batch of slots. Above it
   * the consumer still has work buffered, so waiting saves a round trip per settle.
   */
  get wantsRefill(): boolean {
    return !this.paused && !this.cancelled && this.held <= this.lowWater;
  }

  get isPaused(): boolean {
    return this.paused;
  }

  get isCancelled(): boolean {
    return this.cancelled;
  }

  /** A delivery was handed to the consumer. */
  take(): void {
    this.held += 1;
  }

  /** A held delivery's lease ended (settled, or proved lost): its slot is free again. */
  give(): void {
    this.held -= 1;
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
  }

  /** For good: no room ever again, whatever it still holds. */
  cancel(): void {
    this.cancelled = true;
  }
}
