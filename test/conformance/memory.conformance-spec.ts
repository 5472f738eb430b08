import { MemoryQueueDriver } from '../../src/queue/drivers/memory/memory.driver';
import { describeQueueDriverConformance } from '../../src/queue/testing';

describeQueueDriverConformance('memory', () => Promise.resolve(new MemoryQueueDriver()));
