import type { WorkerPoolOptions } from '../worker-pool';

export type DriverKind = 'memory' | 'sqlite';

/** A named driver instance; several queues may share one. */
export interface DriverDefinition {
  name: string;
  kind: DriverKind;
  /** Driver-specific options (file paths, URLs); the memory driver has none. */
  options?: Record<string, unknown>;
}

/** A logical queue bound to one driver. */
export interface QueueDefinition {
  name: string;
  driver: string;
}

export interface QueueModuleOptions {
  drivers: DriverDefinition[];
  queues: QueueDefinition[];
  /** The driver injected under QUEUE_DRIVER; defaults to the first one. */
  defaultDriver?: string;
  /** Defaults for consumers registered without their own values. */
  consumerDefaults: WorkerPoolOptions;
  /** How long a graceful stop lets running handlers finish before aborting them. */
  shutdownTimeoutMs: number;
}
