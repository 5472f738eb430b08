import { Injectable } from '@nestjs/common';

/**
 * In-process news that a schedule was created or changed, so this process's scheduler re-arms
 * its timer at once. Other processes see the change at their next look (see Scheduler).
 */
@Injectable()
export class ScheduleChanges {
  private readonly listeners = new Set<() => void>();

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  notify(): void {
    for (const listener of this.listeners) listener();
  }
}
