import { Module } from '@nestjs/common';
import { Scheduler } from './scheduler.service';
import { SchedulesModule } from './schedules.module';

/** The worker roles: the scheduler, which turns due ticks into tasks. */
@Module({ imports: [SchedulesModule], providers: [Scheduler], exports: [Scheduler] })
export class SchedulerModule {}
