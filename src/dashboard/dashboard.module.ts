import { Module } from '@nestjs/common';
import { DashboardController } from './dashboard.controller';

/** The API roles: the operator's web page at /dashboard (static; it calls the public API). */
@Module({ controllers: [DashboardController] })
export class DashboardModule {}
