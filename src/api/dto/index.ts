export * from './create-tasks-batch.dto';
export * from './list-tasks.query.dto';
export * from './task-accepted.response.dto';
export * from './task-events.query.dto';
export * from './error.response.dto';
