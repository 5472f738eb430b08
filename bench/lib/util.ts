import { performance } from 'node:perf_hooks';
import { createServer } from 'node:net';

/** Minimal `--flag value` / `--flag=value` / `--switch` parser; unknown flags fail loudly. */
export function parseArgs(
  argv: string[],
  known: Record<string, 'string' | 'boolean'>,
): Record<string, string | boolean> {
  const out: Record<string, string | boolean> = {};
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    if (!arg.startsWith('--')) throw new Error(`unexpected argument ${arg}`);
    const [name, inline] = arg.slice(2).split(/=(.*)/s, 2);
    const kind = known[name];
    if (!kind)
      throw new Error(`unknown option --${name} (known: ${Object.keys(known).join(', ')})`);
    if (kind === 'boolean') {
      out[name] = inline === undefined ? true : inline !== 'false';
    } else {
      const value = inline ?? argv[(i += 1)];
      if (value === undefined) throw new Error(`--${name} needs a value`);
      out[name] = value;
    }
  }
  return out;
}

export function intArg(
  args: Record<string, string | boolean>,
  name: string,
  fallback: number,
  min = 0,
): number {
  const raw = args[name];
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) {
    throw new Error(`--${name} must be an integer >= ${min}, got ${String(raw)}`);
  }
  return value;
}

/** A free TCP port on the loopback interface. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));

/** The q-quantile (0..1) of `sorted` (ascending), nearest-rank. */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank];
}

/** Runs `fn` over `items` with at most `limit` calls in flight. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next;
      next += 1;
      results[index] = await fn(items[index], index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** Samples this process's RSS every `intervalMs` and keeps the peak (MB). */
export class RssSampler {
  private peak = process.memoryUsage.rss();
  private readonly timer: NodeJS.Timeout;

  constructor(intervalMs = 50) {
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  sample(): void {
    this.peak = Math.max(this.peak, process.memoryUsage.rss());
  }

  /** Peak RSS in MB so far; resets the peak to the current RSS when `reset` is set. */
  peakMB(reset = false): number {
    this.sample();
    const value = this.peak / (1024 * 1024);
    if (reset) this.peak = process.memoryUsage.rss();
    return value;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

/**
 * Open loop: call `fire(i)` for i = 0..total-1, each due at start + i / rate seconds, whatever
 * the earlier calls did. `sent[i]` is when call i was made (pass `sent` to read it while the
 * loop runs); failures are counted, not thrown.
 */
export async function openLoop(
  rate: number,
  total: number,
  fire: (i: number) => Promise<unknown>,
  sent = new Float64Array(total),
): Promise<{ sent: Float64Array; seconds: number; failures: () => number }> {
  let failures = 0;
  const interval = 1000 / rate;
  const started = performance.now();
  let i = 0;
  while (i < total) {
    const now = performance.now();
    while (i < total && started + i * interval <= now) {
      sent[i] = performance.now();
      fire(i).catch(() => (failures += 1));
      i += 1;
    }
    await sleep(1);
  }
  return { sent, seconds: (performance.now() - started) / 1000, failures: () => failures };
}
