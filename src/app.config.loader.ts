import { type AppConfig, loadConfig } from './config/app.config';
import { type QueueTopology, resolveTopology } from './queue/topology/queue-topology';

/** The config a process boots with: the environment's values and the queue topology from them. */
export interface BootConfig extends AppConfig {
  queue: AppConfig['queue'] & {
    /**
     * Drivers, queues and consumers: from QUEUE_TOPOLOGY's file when set, otherwise the single
     * driver, queue and consumer the queue variables describe.
     */
    topology: QueueTopology;
  };
}

/**
 * Parses the environment (config) and resolves the queue topology from it (queue), so neither
 * module imports the other. Throws ConfigError on the first bad value.
 */
export function loadAppConfig(env: Record<string, string | undefined> = process.env): BootConfig {
  const config = loadConfig(env);
  const topology = resolveTopology(config);
  return { ...config, queue: { ...config.queue, name: topology.defaultQueue, topology } };
}
