import { Module } from '@nestjs/common';
import { QueuesController } from './queues.controller';

/** The API roles: queue inspection and control (stats, dead letters, pause, resume). */
@Module({ controllers: [QueuesController] })
export class QueuesModule {}
