import { Injectable } from '@nestjs/common';
import { EventEmitter } from 'node:events';
import type { TaskStatus } from '../persistence/task-status.enum';

/** A change of one task, as this process saw it happen. */
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

/**
 * In-process stream of task changes: long polls (`waitMs`), server-sent events and callbacks
 * listen here instead of polling the database. Events only cover changes made by this process;
 * readers that must see other processes' changes also re-read the table now and then.
 */
@Injectable()
export class TaskEvents {
  private readonly emitter = new EventEmitter();

  constructor() {
    // Every open long poll or SSE stream is one listener; none of them is a leak.
    this.emitter.setMaxListeners(0);
  }

  emit(event: TaskEvent): void {
    this.emitter.emit('task', event);
  }

  /** Calls `listener` for every event until the returned function is called. */
  subscribe(listener: (event: TaskEvent) => void): () => void {
    this.emitter.on('task', listener);
    return () => this.emitter.off('task', listener);
  }
}
