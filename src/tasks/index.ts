export * from './dto/create-task.dto';
export * from './dto/task.response.dto';
export * from './errors';
export * from './task-events.service';
export * from './task-message.interface';
export * from './task.factory';
export * from './tasks.module';
export * from './tasks.service';
