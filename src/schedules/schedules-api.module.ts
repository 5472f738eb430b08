import { Module } from '@nestjs/common';
import { SchedulesController } from './schedules.controller';
import { SchedulesModule } from './schedules.module';

/** The API roles: /schedules. */
@Module({ imports: [SchedulesModule], controllers: [SchedulesController] })
export class SchedulesApiModule {}
