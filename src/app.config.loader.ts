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

const SQLITE_MESSAGES_REMOVED =
  'the sqlite-messages driver it configured was removed (the task table is the queue)';

/** Settings of earlier releases that do nothing now, and why. */
const REMOVED_SETTINGS: Record<string, string> = {
  QUEUE_SQLITE_PATH: SQLITE_MESSAGES_REMOVED,
  QUEUE_SQLITE_SHARDS: SQLITE_MESSAGES_REMOVED,
};

/** One warning per removed setting still set, so an upgrade does not ignore it silently. */
export function removedSettingWarnings(
  env: Record<string, string | undefined> = process.env,
): string[] {
  return Object.entries(REMOVED_SETTINGS)
    .filter(([name]) => env[name] !== undefined)
    .map(([name, why]) => `${name} is set but no longer does anything: ${why}`);
}
