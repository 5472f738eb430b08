import type { DriverKind } from '../drivers';
import type { WorkerPoolOptions } from '../worker-pool';

/** A named driver instance; several queues may share one. */
export interface DriverDefinition {
  name: string;
  kind: DriverKind;
  /**
   * Driver-specific options (file paths, URLs); the memory driver has none. URLs may carry
   * credentials: nothing in the queue module logs them.
   */
  options?: Record<string, unknown>;
}

/** A logical queue bound to one driver. */
export interface QueueDefinition {
  name: string;
  driver: string;
}

/** A consumer to start on a queue (QueueConsumerService.consumeDeclared). */
export interface ConsumerDefinition {
  queue: string;
  concurrency: number;
  prefetch: number;
}

export interface QueueModuleOptions {
  drivers: DriverDefinition[];
  queues: QueueDefinition[];
  /**
   * Consumers per queue for consumeDeclared; a declared queue without one gets a single
   * consumer with `consumerDefaults`.
   */
  consumers?: ConsumerDefinition[];
  /** The driver injected under QUEUE_DRIVER; defaults to the first one. */
  defaultDriver?: string;
  /** Defaults for consumers registered without their own values. */
  consumerDefaults: WorkerPoolOptions;
  /** How long a graceful stop lets running handlers finish before aborting them. */
  shutdownTimeoutMs: number;
}
