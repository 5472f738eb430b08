export * from './create-task.dto';
export * from './create-tasks-batch.dto';
export * from './list-tasks.query.dto';
export * from './task-accepted.response.dto';
export * from './task.response.dto';
