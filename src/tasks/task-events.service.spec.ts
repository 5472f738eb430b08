import { TaskStatus } from '../persistence/task-status.enum';
import { MAX_EVENT_MESSAGE_BYTES, TaskEventBus } from './events/task-event-bus';
import { type TaskEvent, TaskEvents } from './task-events.service';

/**
 * One broadcast medium shared by several in-process buses, as a Redis channel is shared by
 * several processes: every message reaches every started bus, its sender's included.
 */
class Medium {
  readonly buses = new Set<InProcessBus>();
  readonly sent: string[] = [];
}

class InProcessBus extends TaskEventBus {
  readonly kind = 'test';
  private onMessage?: (message: string) => void;
  down = false;

  constructor(private readonly medium: Medium) {
    super();
  }

  start(onMessage: (message: string) => void): Promise<void> {
    this.onMessage = onMessage;
    this.medium.buses.add(this);
    return Promise.resolve();
  }

  publish(message: string): Promise<void> {
    if (this.down) return Promise.reject(new Error('transport down'));
    this.medium.sent.push(message);
    for (const bus of this.medium.buses) bus.onMessage?.(message);
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.medium.buses.delete(this);
    return Promise.resolve();
  }
}

const event = (taskId: string, status = TaskStatus.Running): TaskEvent => ({
  type: 'status',
  taskId,
  action: 'sum',
  tenant: 'default',
  status,
  at: 1,
});

describe(TaskEvents.name, () => {
  let medium: Medium;
  let api: TaskEvents;
  let worker: TaskEvents;
  let seenByApi: TaskEvent[];
  let seenByWorker: TaskEvent[];

  beforeEach(async () => {
    medium = new Medium();
    api = new TaskEvents(new InProcessBus(medium));
    worker = new TaskEvents(new InProcessBus(medium));
    await Promise.all([api.onModuleInit(), worker.onModuleInit()]);
    seenByApi = [];
    seenByWorker = [];
    api.subscribe((e) => seenByApi.push(e));
    worker.subscribe((e) => seenByWorker.push(e));
  });

  /** Sends what is queued and waits until the bus took it. */
  const flush = (events: TaskEvents) => events.onApplicationShutdown();

  it('delivers an event to the emitting process at once, before the bus carries it', () => {
    worker.emit(event('a'));

    expect(seenByWorker).toEqual([event('a')]);
    expect(seenByApi).toEqual([]);
  });

  it('delivers another process’s events, in order, and its own only once', async () => {
    worker.emit(event('a', TaskStatus.Running));
    worker.emit(event('a', TaskStatus.Completed));
    api.emit(event('b', TaskStatus.Queued));
    await Promise.all([flush(worker), flush(api)]);

    expect(seenByApi).toEqual([
      event('b', TaskStatus.Queued),
      event('a'),
      event('a', TaskStatus.Completed),
    ]);
    expect(seenByWorker).toEqual([
      event('a'),
      event('a', TaskStatus.Completed),
      event('b', TaskStatus.Queued),
    ]);
  });

  it('sends the events of one flush as one message, split below the size limit', async () => {
    const many = Array.from({ length: 200 }, (_, i) => ({
      ...event(`task-${i}`),
      type: 'progress' as const,
      progress: i % 100,
      progressMessage: 'ü'.repeat(100),
    }));
    for (const e of many) worker.emit(e);
    await flush(worker);

    expect(medium.sent.length).toBeGreaterThan(1);
    for (const message of medium.sent) {
      expect(Buffer.byteLength(message)).toBeLessThanOrEqual(MAX_EVENT_MESSAGE_BYTES + 100);
    }
    expect(seenByApi).toEqual(many);
  });

  it('keeps working locally when the bus refuses a message', async () => {
    const bus = new InProcessBus(medium);
    const alone = new TaskEvents(bus);
    await alone.onModuleInit();
    bus.down = true;
    const seen: TaskEvent[] = [];
    alone.subscribe((e) => seen.push(e));

    alone.emit(event('a'));
    await flush(alone);

    expect(seen).toEqual([event('a')]);
    expect(seenByApi).toEqual([]);
  });

  it('ignores messages it cannot read', async () => {
    await medium.buses.values().next().value!.publish('not json');
    await medium.buses.values().next().value!.publish('{"o":"x","e":[null,{"nope":1}]}');

    expect(seenByApi).toEqual([]);
  });

  it('without a bus delivers to this process only', () => {
    const local = new TaskEvents();
    const seen: TaskEvent[] = [];
    local.subscribe((e) => seen.push(e));
    local.emit(event('a'));

    expect(local.busKind).toBe('local');
    expect(seen).toEqual([event('a')]);
    expect(medium.sent).toEqual([]);
  });
});
