import { Module } from '@nestjs/common';
import { TasksModule } from '../tasks/tasks.module';
import { TaskEventsController } from './task-events.controller';
import { TasksController } from './tasks.controller';

/** The API roles: the task REST API and its event stream. */
@Module({
  imports: [TasksModule],
  // Events first: express matches in order, and GET /tasks/:id would take /tasks/events.
  controllers: [TaskEventsController, TasksController],
})
export class ApiModule {}
