import { type EventSink, TaskEventFanout } from './task-event-fanout';
import type { TaskEvent } from '../tasks/task-events.service';
import { TaskStatus } from '../persistence/task-status.enum';

/** A sink that records what it was sent, and how often the fanout looked at it. */
class RecordingSink implements EventSink {
  readonly chunks: string[] = [];
  looks = 0;
  ended = false;
  destroyed = false;
  /** Bytes the "client" has not read; a reading client keeps this at 0. */
  unread = 0;
  constructor(private readonly reads = true) {}
  get buffered(): number {
    this.looks += 1;
    return this.unread;
  }
  write(chunk: string | Buffer): void {
    this.chunks.push(chunk.toString());
    if (!this.reads) this.unread += Buffer.byteLength(chunk);
  }
  end(): void {
    this.ended = true;
  }
  destroy(): void {
    this.destroyed = true;
  }
  events(): TaskEvent[] {
    return this.chunks
      .join('')
      .split('\n\n')
      .filter((block) => block.startsWith('data: '))
      .map((block) => JSON.parse(block.slice(6)) as TaskEvent);
  }
}

const LIMITS = { maxConnections: 100_000, maxConnectionsPerClient: 100_000, maxBufferBytes: 4096 };
const event = (taskId: string, action = 'sum', tenant = 'default'): TaskEvent => ({
  type: 'status',
  taskId,
  action,
  tenant,
  status: TaskStatus.Running,
  at: 1,
});

describe(TaskEventFanout.name, () => {
  it('sends each stream the events that match every filter it gave', () => {
    const sut = new TaskEventFanout(LIMITS);
    const all = new RecordingSink();
    const taskA = new RecordingSink();
    const taskAsum = new RecordingSink();
    const sums = new RecordingSink();
    sut.add(all, {}, 'c');
    sut.add(taskA, { taskId: 'a' }, 'c');
    sut.add(taskAsum, { taskId: 'a', action: 'sum' }, 'c');
    sut.add(sums, { action: 'sum' }, 'c');

    sut.publish(event('a', 'sum'));
    sut.publish(event('a', 'uppercase'));
    sut.publish(event('b', 'sum'));
    sut.flush();

    const ids = (sink: RecordingSink) => sink.events().map((e) => `${e.taskId}/${e.action}`);
    expect(ids(all)).toEqual(['a/sum', 'a/uppercase', 'b/sum']);
    expect(ids(taskA)).toEqual(['a/sum', 'a/uppercase']);
    expect(ids(taskAsum)).toEqual(['a/sum']);
    expect(ids(sums)).toEqual(['a/sum', 'b/sum']);
    expect(all.chunks[0]).toMatch(new RegExp(`^data: ${JSON.stringify(event('a', 'sum'))}\n\n`));
    // What the streams got between two flushes went out in one write each.
    expect([all, taskA, taskAsum, sums].map((sink) => sink.chunks.length)).toEqual([1, 1, 1, 1]);
  });

  it('does not touch the streams that do not want an event, however many there are', () => {
    const sut = new TaskEventFanout(LIMITS);
    const others = Array.from({ length: 10_000 }, (_, i) => {
      const sink = new RecordingSink();
      sut.add(sink, i % 2 ? { taskId: `task-${i}` } : { action: `action-${i}` }, `client-${i}`);
      return sink;
    });
    const mine = new RecordingSink();
    sut.add(mine, { taskId: 'mine' }, 'me');

    sut.publish(event('mine', 'sum'));
    sut.flush();

    expect(mine.events()).toHaveLength(1);
    expect(others.reduce((looks, sink) => looks + sink.looks + sink.chunks.length, 0)).toBe(0);
  });

  it('refuses a stream beyond the global cap and beyond the per-client cap', () => {
    const sut = new TaskEventFanout({ ...LIMITS, maxConnections: 3, maxConnectionsPerClient: 2 });
    const first = sut.add(new RecordingSink(), {}, 'a');
    expect(typeof first).toBe('function');
    expect(typeof sut.add(new RecordingSink(), {}, 'a')).toBe('function');
    expect(sut.add(new RecordingSink(), {}, 'a')).toBe('client');
    expect(typeof sut.add(new RecordingSink(), {}, 'b')).toBe('function');
    expect(sut.add(new RecordingSink(), {}, 'c')).toBe('global');

    (first as () => void)();
    (first as () => void)(); // removing twice frees one place only
    expect(sut.size).toBe(2);
    expect(typeof sut.add(new RecordingSink(), {}, 'a')).toBe('function');
    expect(sut.add(new RecordingSink(), {}, 'c')).toBe('global');
  });

  it('drops a stream whose client stops reading, before its unsent data passes the bound', () => {
    const sut = new TaskEventFanout(LIMITS);
    const stalled = new RecordingSink(false);
    const reader = new RecordingSink();
    sut.add(stalled, {}, 'slow');
    sut.add(reader, {}, 'fast');

    for (let i = 0; i < 1000; i++) {
      sut.publish(event(`task-${i}`));
      if (i % 3 === 0) sut.flush();
      expect(stalled.unread).toBeLessThanOrEqual(LIMITS.maxBufferBytes);
      expect(sut.buffered()).toBeLessThanOrEqual(2 * LIMITS.maxBufferBytes); // two streams
    }
    sut.flush();

    expect(stalled.destroyed).toBe(true);
    expect(sut.dropped).toBe(1);
    expect(sut.size).toBe(1);
    expect(reader.events()).toHaveLength(1000);
    // Its place is free again: the same client may reconnect.
    expect(typeof sut.add(new RecordingSink(), {}, 'slow')).toBe('function');
  });

  it('sends a broadcast comment to every stream and ends them all on closeAll', () => {
    const sut = new TaskEventFanout(LIMITS);
    const sinks = [new RecordingSink(), new RecordingSink()];
    sut.add(sinks[0], { taskId: 'a' }, 'c');
    sut.add(sinks[1], { action: 'x' }, 'c');
    sut.broadcast(': heartbeat\n\n');
    sut.flush();
    expect(sinks.map((s) => s.chunks)).toEqual([[': heartbeat\n\n'], [': heartbeat\n\n']]);
    sut.publish(event('a', 'x'));
    sut.closeAll(); // sends what is pending, then ends
    expect(sinks.every((s) => s.ended)).toBe(true);
    expect(sinks[0].events()).toHaveLength(1);
    expect(sut.size).toBe(0);
    sut.publish(event('a', 'x'));
    sut.flush();
    expect(sinks.map((s) => s.chunks.length)).toEqual([2, 2]);
  });

  it("shows a tenant's streams only that tenant's events, whatever their filter", () => {
    const sut = new TaskEventFanout(LIMITS);
    const acme = { all: new RecordingSink(), sum: new RecordingSink(), task: new RecordingSink() };
    sut.add(acme.all, { tenant: 'acme' }, 'a');
    sut.add(acme.sum, { tenant: 'acme', action: 'sum' }, 'a');
    // A task id learnt from another tenant shows nothing of that task.
    sut.add(acme.task, { tenant: 'acme', taskId: 'g1' }, 'a');
    const operator = new RecordingSink();
    sut.add(operator, {}, 'o');
    sut.publish(event('g1', 'sum', 'globex'));
    sut.publish(event('a1', 'sum', 'acme'));
    sut.flush();
    const ids = (sink: RecordingSink) => sink.events().map((e) => e.taskId);
    expect([ids(acme.all), ids(acme.sum), ids(acme.task)]).toEqual([['a1'], ['a1'], []]);
    expect(ids(operator)).toEqual(['g1', 'a1']);
  });
});
