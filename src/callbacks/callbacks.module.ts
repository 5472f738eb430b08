import { Module } from '@nestjs/common';
import { PersistenceModule } from '../persistence/persistence.module';
import { TasksModule } from '../tasks/tasks.module';
import { CallbackDispatcher } from './callback-dispatcher.service';

/** The worker roles: signed result callbacks, delivered with retries. */
@Module({
  imports: [PersistenceModule, TasksModule],
  providers: [CallbackDispatcher],
})
export class CallbacksModule {}
