export * from './errors/duplicate-task-handler.error';
export * from './errors/invalid-task-handler.error';
export * from './handlers.module';
export * from './task-context.interface';
export * from './task-handler.decorator';
export * from './task-handler.explorer';
