import type { MessageEvent } from '@nestjs/common';
import { EventEmitter } from 'node:events';
import { SSE_HEARTBEAT_MS, TaskEventsController } from './task-events.controller';
import { TaskEvents } from '../tasks/task-events.service';
import { TaskStatus } from '../persistence/task-status.enum';

describe(TaskEventsController.name, () => {
  let events: TaskEvents;
  let sut: TaskEventsController;
  let response: EventEmitter & { closed: boolean };

  beforeEach(() => {
    jest.useFakeTimers();
    events = new TaskEvents();
    sut = new TaskEventsController(events);
    response = Object.assign(new EventEmitter(), { closed: false });
  });
  afterEach(() => jest.useRealTimers());

  const open = (query: { taskId?: string; action?: string } = {}) => {
    const received: MessageEvent[] = [];
    let completed = false;
    const subscription = sut
      .stream(query, response as never)
      .subscribe({ next: (e) => received.push(e), complete: () => (completed = true) });
    return { received, subscription, isCompleted: () => completed };
  };
  const change = (taskId: string, action: string) =>
    events.emit({
      type: 'status',
      taskId,
      tenant: 'default',
      action,
      status: TaskStatus.Running,
      at: 1,
    });

  it('sends a heartbeat comment every 15 s while nothing happens', () => {
    const { received, subscription } = open();
    jest.advanceTimersByTime(SSE_HEARTBEAT_MS * 2);
    expect(received).toEqual([{ comment: 'heartbeat' }, { comment: 'heartbeat' }]);
    subscription.unsubscribe();
  });

  it('passes on the events that match every filter given', () => {
    const { received, subscription } = open({ taskId: 'a', action: 'sum' });
    change('a', 'sum');
    change('b', 'sum');
    change('a', 'uppercase');
    expect(received.map((e) => e.data)).toEqual([expect.objectContaining({ taskId: 'a' })]);
    subscription.unsubscribe();
  });

  it('completes open streams, and streams opened later, once shutdown begins', async () => {
    const before = open();
    const shutdown = sut.beforeApplicationShutdown();
    expect(before.isCompleted()).toBe(true);
    response.emit('close'); // Nest ends the response once the stream completes
    await shutdown;
    expect(open().isCompleted()).toBe(true);
  });

  it('stops listening to task events when the stream is unsubscribed', () => {
    const { received, subscription } = open();
    subscription.unsubscribe();
    change('a', 'sum');
    expect(received).toEqual([]);
  });
});
