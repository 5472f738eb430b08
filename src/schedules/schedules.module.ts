import { Module } from '@nestjs/common';
import { HandlersModule } from '../handlers/handlers.module';
import { PersistenceModule } from '../persistence/persistence.module';
import { TasksModule } from '../tasks/tasks.module';
import { ScheduleChanges } from './schedule-changes';
import { ScheduleClock } from './schedule-clock';
import { ScheduleStore } from './schedule.store';
import { SchedulesService } from './schedules.service';

/** The schedules table and its use cases, shared by the REST API and the scheduler. */
@Module({
  imports: [PersistenceModule, HandlersModule, TasksModule],
  providers: [ScheduleStore, SchedulesService, ScheduleClock, ScheduleChanges],
  exports: [ScheduleStore, SchedulesService, ScheduleClock, ScheduleChanges],
})
export class SchedulesModule {}
