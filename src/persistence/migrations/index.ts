import { CreateTasks1763900000000 } from './1763900000000-CreateTasks';
import { AddTaskControl1763910000000 } from './1763910000000-AddTaskControl';
import { CreateSchedules1764600000000 } from './1764600000000-CreateSchedules';
import { TaskTableQueue1765000000000 } from './1765000000000-TaskTableQueue';
import { PartialTaskIndexes1765000001000 } from './1765000001000-PartialTaskIndexes';

/**
 * Every migration, oldest first. Listed explicitly (not globbed) so the same list works from
 * `dist/`, from ts-node and from Jest. Add a generated migration here.
 */
export const migrations = [
  CreateTasks1763900000000,
  AddTaskControl1763910000000,
  CreateSchedules1764600000000,
  TaskTableQueue1765000000000,
  PartialTaskIndexes1765000001000,
];
