import { defineDriver } from '../driver-kind';
import { MemoryQueueDriver } from './memory.driver';

export const memoryDriver = defineDriver({
  kind: 'memory',
  // Messages live in this process's memory: a separate API or worker would never meet them.
  inProcess: true,
  optionKeys: [],
  envOptions: () => ({}),
  create: () => new MemoryQueueDriver(),
});
