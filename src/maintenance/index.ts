export * from './maintenance.module';
export * from './task-reconciler.service';
export * from './task-retention.service';
