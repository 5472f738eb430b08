export * from './errors/task-timeout.error';
export * from './task.processor';
export * from './worker.module';
