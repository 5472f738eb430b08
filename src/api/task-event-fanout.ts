import type { TaskEvent } from '../tasks/task-events.service';

/** Where a stream's bytes go: an HTTP response in the service, a recorder in tests. */
export interface EventSink {
  /** Queues `chunk` for sending. */
  write(chunk: string | Buffer): void;
  /** Bytes written but not yet handed to the network (the response's `writableLength`). */
  readonly buffered: number;
  /** Ends the stream after what was written (shutdown). */
  end(): void;
  /** Ends the stream at once, unsent data dropped. */
  destroy(): void;
}

export interface StreamFilter {
  /** The stream's key's tenant: it sees that tenant's tasks only (undefined: every tenant). */
  tenant?: string;
  taskId?: string;
  action?: string;
}

/** The index key of streams that take every tenant's events. */
const ANY_TENANT = '';

export interface FanoutLimits {
  maxConnections: number;
  maxConnectionsPerClient: number;
  maxBufferBytes: number;
}

/** How long an event may wait to be sent with the ones that follow it. */
export const FLUSH_MS = 10;

/** Why a stream was not opened. */
export type Refusal = 'global' | 'client';

interface Subscriber {
  sink: EventSink;
  filter: StreamFilter;
  client: string;
  /** Chunks not yet written: they go out together at the next flush (one write, not one each). */
  pending: string[];
  pendingBytes: number;
}

/**
 * The open event streams of this process, indexed by what they want: a task id, an action, or
 * everything. An event is serialised once and reaches only the streams whose filter it matches,
 * so its cost does not grow with the streams that do not want it. Streams are capped in total
 * and per client, and a stream whose client does not read (its unsent data passes
 * `maxBufferBytes`) is dropped, so slow clients cannot make the server buffer without bound.
 * Events are sent in batches every FLUSH_MS: what a stream gets in that time goes out in one
 * write, encoded once for all streams that get the same events, so a burst of events costs each
 * stream one system call, not one per event.
 */
export class TaskEventFanout {
  private readonly byTask = new Map<string, Set<Subscriber>>();
  private readonly byAction = new Map<string, Set<Subscriber>>();
  /** Streams with neither a task id nor an action, by tenant. */
  private readonly everything = new Map<string, Set<Subscriber>>();
  private readonly perClient = new Map<string, number>();
  private readonly subscribers = new Set<Subscriber>();
  private droppedCount = 0;
  /** Streams with pending chunks, and the timer that flushes them. */
  private dirty: Subscriber[] = [];
  private timer?: NodeJS.Timeout;

  constructor(private readonly limits: FanoutLimits) {}

  /** Open streams. */
  get size(): number {
    return this.subscribers.size;
  }

  /** Streams dropped so far because their client did not read. */
  get dropped(): number {
    return this.droppedCount;
  }

  /** Unsent bytes held for all open streams. */
  buffered(): number {
    let total = 0;
    for (const { sink, pendingBytes } of this.subscribers) total += sink.buffered + pendingBytes;
    return total;
  }

  /**
   * Adds a stream, or answers why not. The returned function removes it (idempotent); call it
   * when the response closes.
   */
  add(sink: EventSink, filter: StreamFilter, client: string): (() => void) | Refusal {
    if (this.subscribers.size >= this.limits.maxConnections) return 'global';
    const mine = this.perClient.get(client) ?? 0;
    if (mine >= this.limits.maxConnectionsPerClient) return 'client';
    const subscriber: Subscriber = { sink, filter, client, pending: [], pendingBytes: 0 };
    this.subscribers.add(subscriber);
    this.perClient.set(client, mine + 1);
    const [map, key] = this.indexOf(filter);
    map.set(key, (map.get(key) ?? new Set()).add(subscriber));
    return () => this.remove(subscriber);
  }

  /** Sends `event` to the streams that want it. */
  publish(event: TaskEvent): void {
    let chunk: string | undefined;
    let bytes = 0;
    const send = (subscriber: Subscriber): void => {
      if (chunk === undefined) {
        chunk = `data: ${JSON.stringify(event)}\n\n`;
        bytes = Buffer.byteLength(chunk);
      }
      this.write(subscriber, chunk, bytes);
    };
    for (const subscriber of this.byTask.get(event.taskId) ?? []) {
      const { action, tenant } = subscriber.filter;
      if (tenant !== undefined && tenant !== event.tenant) continue;
      if (action === undefined || action === event.action) send(subscriber);
    }
    for (const tenant of [event.tenant, ANY_TENANT]) {
      for (const subscriber of this.byAction.get(`${tenant}\u0000${event.action}`) ?? []) {
        send(subscriber);
      }
      for (const subscriber of this.everything.get(tenant) ?? []) send(subscriber);
    }
  }

  /** Writes `chunk` (a comment such as a heartbeat) to every stream. */
  broadcast(chunk: string): void {
    const bytes = Buffer.byteLength(chunk);
    for (const subscriber of [...this.subscribers]) this.write(subscriber, chunk, bytes);
  }

  /** Ends every stream (shutdown), after what is pending for it. */
  closeAll(): void {
    this.flush();
    for (const subscriber of [...this.subscribers]) {
      this.remove(subscriber);
      subscriber.sink.end();
    }
  }

  /** Writes what was queued for each stream; runs by itself FLUSH_MS after the first chunk. */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const dirty = this.dirty;
    this.dirty = [];
    // Streams that want the same events get the same chunks in the same order: encode them once.
    const encoded = new Map<string, Buffer>();
    for (const subscriber of dirty) {
      const { pending } = subscriber;
      subscriber.pending = [];
      subscriber.pendingBytes = 0;
      if (!this.subscribers.has(subscriber) || pending.length === 0) continue;
      const key = `${pending.length}\u0000${pending[0]}\u0000${pending[pending.length - 1]}`;
      let bytes = encoded.get(key);
      if (!bytes) {
        bytes = Buffer.from(pending.length === 1 ? pending[0] : pending.join(''));
        encoded.set(key, bytes);
      }
      subscriber.sink.write(bytes);
    }
  }

  private write(subscriber: Subscriber, chunk: string, bytes: number): void {
    const held = subscriber.sink.buffered + subscriber.pendingBytes;
    if (held + bytes > this.limits.maxBufferBytes) {
      // Its client stopped reading: holding more would let it grow the server's memory.
      this.droppedCount += 1;
      this.remove(subscriber);
      subscriber.sink.destroy();
      return;
    }
    if (subscriber.pending.length === 0) this.dirty.push(subscriber);
    subscriber.pending.push(chunk);
    subscriber.pendingBytes += bytes;
    this.timer ??= setTimeout(() => this.flush(), FLUSH_MS);
  }

  private remove(subscriber: Subscriber): void {
    if (!this.subscribers.delete(subscriber)) return;
    subscriber.pending = [];
    subscriber.pendingBytes = 0;
    const left = (this.perClient.get(subscriber.client) ?? 1) - 1;
    if (left === 0) this.perClient.delete(subscriber.client);
    else this.perClient.set(subscriber.client, left);
    const [map, key] = this.indexOf(subscriber.filter);
    const set = map.get(key);
    set?.delete(subscriber);
    if (set?.size === 0) map.delete(key);
  }

  /**
   * A stream with a task id is indexed by it (its tenant and action, if any, checked per event);
   * the others by tenant and action, or by tenant alone.
   */
  private indexOf(filter: StreamFilter): [Map<string, Set<Subscriber>>, string] {
    if (filter.taskId !== undefined) return [this.byTask, filter.taskId];
    const tenant = filter.tenant ?? ANY_TENANT;
    if (filter.action !== undefined) return [this.byAction, `${tenant}\u0000${filter.action}`];
    return [this.everything, tenant];
  }
}
