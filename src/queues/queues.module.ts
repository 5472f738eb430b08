import { Module } from '@nestjs/common';
import { PersistenceModule } from '../persistence/persistence.module';
import { QueuesController } from './queues.controller';

/** The API roles: queue inspection and control (stats, dead letters, pause, resume). */
@Module({ imports: [PersistenceModule], controllers: [QueuesController] })
export class QueuesModule {}
