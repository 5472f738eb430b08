export * from './duplicate-task-handler.error';
export * from './invalid-task-data.error';
export * from './invalid-task-handler.error';
export * from './task-not-found.error';
export * from './unknown-action.error';
