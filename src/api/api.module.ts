import { Module } from '@nestjs/common';
import { TasksModule } from '../tasks/tasks.module';
import { RateLimitModule } from './rate-limit.module';
import { TaskEventsController } from './task-events.controller';
import { TasksController } from './tasks.controller';

/** The API roles: the task REST API, its event stream, and the per-client rate limit. */
@Module({
  imports: [TasksModule, RateLimitModule],
  // Events first: express matches in order, and GET /tasks/:id would take /tasks/events.
  controllers: [TaskEventsController, TasksController],
})
export class ApiModule {}
