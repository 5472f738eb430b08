import type { QueueDriver } from '../interfaces/queue-driver.interface';

/**
 * The environment's driver settings (config's `queue` section): the options of QUEUE_DRIVER's
 * driver, and the defaults a topology file's driver entries override.
 */
export interface DriverEnvironment {
  leaseMs: number;
  redis: { url: string; allowVolatile?: boolean; appendfsync?: 'always' | 'everysec' | 'no' };
  amqp: { url: string };
}

/** Reports a bad option by its key; never returns. */
export type OptionFail = (key: string, message: string) => never;

/** Where a driver reports its own connection troubles; its messages never contain a URL. */
export interface DriverLogger {
  error(message: string, stack?: string): void;
  warn?(message: string): void;
}

/**
 * Everything taskq knows about one kind of driver. A driver is a folder under `drivers/` with
 * one of these; listing it in `DRIVERS` (drivers/index.ts) makes the kind known everywhere.
 */
export interface DriverKindDefinition<
  K extends string = string,
  D extends QueueDriver = QueueDriver,
> {
  /** The name in QUEUE_DRIVER and in a topology file's `queue.driver.<kind>`. */
  readonly kind: K;
  /** The driver lives inside one process, so API and workers must be one process (APP_ROLE=all). */
  readonly inProcess?: boolean;
  /** The options a topology entry may give; any other key is refused. */
  readonly optionKeys: readonly string[];
  /** Options from the environment: the whole set without a topology file, the base with one. */
  envOptions(env: DriverEnvironment): Record<string, unknown>;
  /**
   * Checks the merged options at config time, reporting a bad one through `fail`, and returns
   * them as the driver will get them. Without it, options pass unchecked.
   */
  validateOptions?(options: Record<string, unknown>, fail: OptionFail): Record<string, unknown>;
  /** A new, unconnected driver. */
  create(options: Record<string, unknown>, logger: DriverLogger): D;
  /**
   * Opens the connection and checks the server, so a wrong URL or a misconfigured server stops
   * the boot; without it the registry pings the driver.
   */
  connect?(driver: D): Promise<void>;
}

/** Keeps the kind's literal type, from which the DriverKind union is derived. */
export function defineDriver<K extends string, D extends QueueDriver>(
  definition: DriverKindDefinition<K, D>,
): DriverKindDefinition<K, D> {
  return definition;
}

/** Refuses a `url` option that is not a URL with one of `protocols`. */
export function checkUrlOption(
  options: Record<string, unknown>,
  protocols: readonly string[],
  fail: OptionFail,
): void {
  const url = options.url;
  let protocol: string | undefined;
  try {
    protocol = typeof url === 'string' ? new URL(url).protocol : undefined;
  } catch {
    protocol = undefined;
  }
  // Never echo the value: it may hold a password.
  if (!protocol || !protocols.includes(protocol)) fail('url', `expected a ${protocols[0]}// URL`);
}
