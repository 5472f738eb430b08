/** Writes one line; the caller chooses the logger and level. */
export type LineWriter = (line: string) => void;

interface Entry {
  line: string;
  /** Occurrences since the last line written for this key. */
  unwritten: number;
  writtenAt: number;
  timer?: NodeJS.Timeout;
}

/**
 * Logs a repeating error once per interval with a count instead of once per occurrence: a full
 * disk under load fails every request, and a line (let alone a stack) per request buries the one
 * line an operator needs. The first occurrence of a key is written at once; later ones within
 * `intervalMs` are counted and written as one "repeated N times" line when the interval ends.
 */
export class RepeatLog {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly write: LineWriter,
    private readonly intervalMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Records one occurrence of `key`; `line` (the latest) is what is written for it. */
  report(key: string, line: string): void {
    const entry = this.entries.get(key);
    const quiet = entry && !entry.timer && this.now() - entry.writtenAt >= this.intervalMs;
    if (!entry || quiet) {
      // New, or nothing since its last line a whole interval ago: news again.
      this.write(line);
      this.entries.set(key, { line, unwritten: 0, writtenAt: this.now() });
      return;
    }
    entry.unwritten += 1;
    entry.line = line;
    entry.timer ??= setTimeout(
      () => this.flush(key),
      Math.max(0, entry.writtenAt + this.intervalMs - this.now()),
    ).unref();
  }

  /** Writes what is still counted (at shutdown, say) and forgets every key. */
  close(): void {
    for (const entry of this.entries.values()) {
      clearTimeout(entry.timer);
      if (entry.unwritten > 0) this.write(`${entry.line} (repeated ${entry.unwritten} times)`);
    }
    this.entries.clear();
  }

  private flush(key: string): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    entry.timer = undefined;
    const seconds = Math.round((this.now() - entry.writtenAt) / 1000);
    this.write(`${entry.line} (repeated ${entry.unwritten} times in the last ${seconds} s)`);
    entry.unwritten = 0;
    entry.writtenAt = this.now();
  }
}
