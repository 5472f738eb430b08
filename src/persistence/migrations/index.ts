import { CreateTasks1763900000000 } from './1763900000000-CreateTasks';
import { AddTaskControl1763910000000 } from './1763910000000-AddTaskControl';
import { CreateSchedules1764600000000 } from './1764600000000-CreateSchedules';
import { TaskTableQueue1765000000000 } from './1765000000000-TaskTableQueue';
import { PartialTaskIndexes1765000001000 } from './1765000001000-PartialTaskIndexes';
import { AddAuth1765100000000 } from './1765100000000-AddAuth';
import { ListIndexes1765200000000 } from './1765200000000-ListIndexes';
import { CreateTaskEvents1765350000000 } from './1765350000000-CreateTaskEvents';
import { AddTaskDeliveries1765600000000 } from './1765600000000-AddTaskDeliveries';
import { SqliteIntegerColumns1765700000000 } from './1765700000000-SqliteIntegerColumns';
import { SqliteTableQueue1765800000000 } from './1765800000000-SqliteTableQueue';
import { AddTaskTraceHeaders1765800001000 } from './1765800001000-AddTaskTraceHeaders';
import { SqliteQueueCountIndexes1765900000000 } from './1765900000000-SqliteQueueCountIndexes';
import { NotifyDueTimes1765900001000 } from './1765900001000-NotifyDueTimes';

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
  AddAuth1765100000000,
  ListIndexes1765200000000,
  CreateTaskEvents1765350000000,
  AddTaskDeliveries1765600000000,
  SqliteIntegerColumns1765700000000,
  SqliteTableQueue1765800000000,
  AddTaskTraceHeaders1765800001000,
  SqliteQueueCountIndexes1765900000000,
  NotifyDueTimes1765900001000,
];
