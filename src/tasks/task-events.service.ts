import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationShutdown,
  type OnModuleInit,
  Optional,
} from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { TaskStatus } from '../persistence/task-status.enum';
import { MAX_EVENT_MESSAGE_BYTES, TaskEventBus } from './events/task-event-bus';

/** A change of one task, made by this process or, through the event bus, by another one. */
export interface TaskEvent {
  type: 'status' | 'progress';
  taskId: string;
  /** Streams show a client only its own tenant's events. */
  tenant: string;
  action: string;
  status: TaskStatus;
  progress?: number | null;
  progressMessage?: string | null;
  at: number;
}

/** What a bus message holds: the sending process's id and its events, oldest first. */
interface Envelope {
  o: string;
  e: TaskEvent[];
}

/** Events emitted within this long go to the bus as one message. */
const FLUSH_MS = 10;

/**
 * The stream of task changes: long polls (`waitMs`), server-sent events, cancels and callbacks
 * listen here instead of polling the database. A change is delivered to this process's
 * listeners at once and sent on the event bus (TASK_EVENTS_BUS: Redis, PostgreSQL or the SQLite
 * change feed) to the other processes. What comes back from the bus is delivered only when
 * another process sent it, so no listener sees one change twice. Without a bus (`local`), only
 * this process's changes are seen.
 */
@Injectable()
export class TaskEvents implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(TaskEvents.name);
  private readonly emitter = new EventEmitter();
  /** This process's id on the bus. */
  private readonly origin = randomUUID();
  private outbox: TaskEvent[] = [];
  private flushTimer?: NodeJS.Timeout;
  private sending: Promise<void> = Promise.resolve();
  private started = false;
  private lastWarning = 0;

  constructor(@Optional() @Inject(TaskEventBus) private readonly bus: TaskEventBus | null = null) {
    // Every open long poll or SSE stream is one listener; none of them is a leak.
    this.emitter.setMaxListeners(0);
  }

  /** Which bus carries events to other processes: `sqlite`, `postgres`, `redis` or `local`. */
  get busKind(): string {
    return this.bus?.kind ?? 'local';
  }

  async onModuleInit(): Promise<void> {
    if (!this.bus) return;
    await this.bus.start((message) => this.receive(message));
    this.started = true;
    this.logger.log(`task events are shared with other processes through ${this.bus.kind}`);
  }

  /** Sends what is still queued, after the consumers drained, then closes the bus. */
  async onApplicationShutdown(): Promise<void> {
    if (!this.bus) return;
    this.flush();
    await this.sending;
    this.started = false;
    await this.bus.close();
  }

  emit(event: TaskEvent): void {
    this.deliver(event);
    if (!this.bus) return;
    this.outbox.push(event);
    this.flushTimer ??= setTimeout(() => this.flush(), FLUSH_MS);
  }

  /** Calls `listener` for every event until the returned function is called. */
  subscribe(listener: (event: TaskEvent) => void): () => void {
    this.emitter.on('task', listener);
    return () => this.emitter.off('task', listener);
  }

  private deliver(event: TaskEvent): void {
    this.emitter.emit('task', event);
  }

  /** The outbox as messages of at most MAX_EVENT_MESSAGE_BYTES, sent in order. */
  private flush(): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.outbox.length === 0 || !this.bus || !this.started) return;
    const events = this.outbox;
    this.outbox = [];
    const messages: string[] = [];
    let batch: string[] = [];
    let bytes = 0;
    for (const event of events) {
      const json = JSON.stringify(event);
      const size = Buffer.byteLength(json) + 1;
      if (batch.length > 0 && bytes + size > MAX_EVENT_MESSAGE_BYTES) {
        messages.push(this.envelope(batch));
        batch = [];
        bytes = 0;
      }
      batch.push(json);
      bytes += size;
    }
    messages.push(this.envelope(batch));
    const bus = this.bus;
    this.sending = this.sending.then(() =>
      bus.publishAll(messages, (error) =>
        this.warn(`task events not sent to other processes: ${(error as Error).message}`),
      ),
    );
  }

  private envelope(events: string[]): string {
    return `{"o":${JSON.stringify(this.origin)},"e":[${events.join(',')}]}`;
  }

  private receive(message: string): void {
    let envelope: Envelope;
    try {
      envelope = JSON.parse(message) as Envelope;
    } catch {
      return this.warn('an unreadable task event message was ignored');
    }
    // This process delivered its own events when it emitted them.
    if (envelope.o === this.origin || !Array.isArray(envelope.e)) return;
    for (const event of envelope.e) {
      if (event && typeof event.taskId === 'string') this.deliver(event);
    }
  }

  /** At most one warning a minute: a bus that is down would otherwise log every event. */
  private warn(text: string): void {
    if (Date.now() - this.lastWarning < 60_000) return;
    this.lastWarning = Date.now();
    this.logger.warn(text);
  }
}
