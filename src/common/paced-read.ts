import { performance } from 'node:perf_hooks';

/**
 * A read whose cost grows with the data (counting a backlog on SQLite blocks the event loop for
 * as long as it takes), paced: once a read took longer than `slowMs`, its answer is reused for
 * `factor` times as long as it took, so however often callers ask, such reads hold the event
 * loop at most about 1/(factor + 1) of the time. Cheap reads are never reused: their answers
 * stay exact. Concurrent callers share one read.
 */
export class PacedRead<K, V> {
  private readonly answers = new Map<K, { value: V; until: number }>();
  private readonly reading = new Map<K, Promise<V>>();

  constructor(
    private readonly read: (key: K) => V | Promise<V>,
    private readonly slowMs = 20,
    private readonly factor = 10,
    private readonly now: () => number = () => performance.now(),
  ) {}

  get(key: K): Promise<V> {
    const answer = this.answers.get(key);
    if (answer && this.now() < answer.until) return Promise.resolve(answer.value);
    const running = this.reading.get(key);
    if (running) return running;
    const started = this.now();
    const promise = Promise.resolve()
      .then(() => this.read(key))
      .then((value) => {
        const took = this.now() - started;
        if (took > this.slowMs)
          this.answers.set(key, { value, until: started + took * (this.factor + 1) });
        else this.answers.delete(key);
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
