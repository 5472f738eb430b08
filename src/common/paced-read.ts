import { performance } from 'node:perf_hooks';

/** This process's CPU time in milliseconds (every thread's: Node 20 has no per-thread figure). */
export function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

export interface PacedReadOptions {
  /** A read that held the event loop longer than this is reused (default 20 ms). */
  slowMs?: number;
  /** For this many times as long as it held the loop (default 10). */
  factor?: number;
  /** Wall clock for when a reused answer expires. */
  now?: () => number;
  /** What a read cost: CPU time, so a read the machine merely descheduled is not "slow". */
  cost?: () => number;
}

/**
 * A read whose cost grows with the data (counting a backlog on SQLite blocks the event loop for
 * as long as it takes), paced: once a read's synchronous part took longer than `slowMs` of CPU,
 * its answer is reused for `factor` times as long, so however often callers ask, such reads
 * hold the event loop at most about 1/(factor + 1) of the time. Cheap reads are never reused:
 * their answers stay exact. Concurrent callers share one read.
 */
export class PacedRead<K, V> {
  private readonly answers = new Map<K, { value: V; until: number }>();
  private readonly reading = new Map<K, Promise<V>>();
  private readonly slowMs: number;
  private readonly factor: number;
  private readonly now: () => number;
  private readonly cost: () => number;

  constructor(
    private readonly read: (key: K) => V | Promise<V>,
    options: PacedReadOptions = {},
  ) {
    this.slowMs = options.slowMs ?? 20;
    this.factor = options.factor ?? 10;
    this.now = options.now ?? (() => performance.now());
    this.cost = options.cost ?? cpuMs;
  }

  get(key: K): Promise<V> {
    const answer = this.answers.get(key);
    if (answer && this.now() < answer.until) return Promise.resolve(answer.value);
    const running = this.reading.get(key);
    if (running) return running;
    const promise = Promise.resolve()
      .then(async () => {
        const before = this.cost();
        const result = this.read(key);
        const held = this.cost() - before;
        const value = await result;
        if (held > this.slowMs) {
          this.answers.set(key, { value, until: this.now() + held * this.factor });
        } else {
          this.answers.delete(key);
        }
        return value;
      })
      .finally(() => this.reading.delete(key));
    this.reading.set(key, promise);
    return promise;
  }

  /** Forgets a reused answer: the next get reads (after a change the caller made itself). */
  forget(key: K): void {
    this.answers.delete(key);
  }
}
