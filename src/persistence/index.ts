export * from './callback.store';
export * from './data-source.options';
export * from './persistence.module';
export * from './task-reconcile.store';
export * from './task-status.enum';
export * from './task.entity';
export * from './task.store';
