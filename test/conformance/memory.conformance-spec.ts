import { MemoryQueueDriver } from '../../src/queue/drivers/memory/memory.driver';
import { describeQueueDriverConformance } from './queue-driver.conformance';

describeQueueDriverConformance('memory', () => Promise.resolve(new MemoryQueueDriver()));
