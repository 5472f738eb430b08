import { Injectable } from '@nestjs/common';

/**
 * The time schedules are computed against. One provider, so tests can move time for the
 * service and the scheduler together instead of waiting for real minutes to pass.
 */
@Injectable()
export class ScheduleClock {
  now(): number {
    return Date.now();
  }
}
