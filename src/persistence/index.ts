export * from './data-source.options';
export * from './persistence.module';
export * from './task-statements';
export * from './task-status.enum';
export * from './task.entity';
