import 'reflect-metadata';
import { type INestApplication, Logger } from '@nestjs/common';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApp } from './bootstrap';
import { type BootConfig, loadAppConfig, removedSettingWarnings } from './app.config.loader';
import { ConfigError } from './config/app.config';
import { DatabaseStartupError } from './persistence/database-file';
import { ShutdownState } from './health/shutdown-state';
import { startTracing } from './observability/tracing';

const logger = new Logger('taskq');
/** Beyond SHUTDOWN_TIMEOUT_MS (the drain), how long closing drivers and the database may take. */
const SHUTDOWN_GUARD_MS = 30_000;

/**
 * SIGTERM/SIGINT close the app gracefully (consumers drain, then drivers and the database
 * close) and exit 0. Nest's own shutdown hooks would re-raise the signal instead, and a
 * supervisor would read that as a crash. A second signal exits at once.
 */
function exitOnSignals(
  app: INestApplication,
  shutdownTimeoutMs: number,
  beforeExit: () => Promise<void>,
): void {
  let closing = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (closing) {
      logger.warn(`${signal} again: exiting without waiting`);
      process.exit(1);
    }
    closing = true;
    // Readiness answers 503 from now on, before consumers drain: load balancers stop first.
    app.get(ShutdownState, { strict: false }).begin();
    logger.log(`${signal}: shutting down`);
    // A referenced timer keeps the process alive until the close is done: otherwise the event
    // loop can run empty while Nest closes (every other handle already unreferenced) and the
    // process ends with 0 before the last spans are flushed. It also bounds a hung shutdown.
    const limitMs = shutdownTimeoutMs + SHUTDOWN_GUARD_MS;
    const guard = setTimeout(() => {
      logger.error(`${signal}: shutdown not done after ${limitMs} ms; exiting`);
      process.exit(1);
    }, limitMs);
    app.close().then(
      () =>
        beforeExit().finally(() => {
          clearTimeout(guard);
          process.exit(0);
        }),
      (error: unknown) => {
        logger.error('shutdown failed', (error as Error).stack);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

function configOrExit(): BootConfig {
  try {
    return loadAppConfig();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    // One line naming the variable, no stack: this is the operator's mistake, not a bug.
    console.error(`taskq: ${error.message}`);
    process.exit(1);
  }
}

/**
 * "database postgres, driver redis" or, with several queues, "queues emails on amqp, reports on
 * sqlite". Kinds and names only: URLs may carry passwords and are never printed.
 */
function describeStores(config: BootConfig): string {
  const database = `database ${config.databaseUrl ? 'postgres' : 'sqlite'}`;
  const { drivers, queues } = config.queue.topology;
  const kindOf = (driver: string): string => drivers.find((d) => d.name === driver)?.kind ?? '?';
  if (queues.length === 1) return `${database}, driver ${kindOf(queues[0].driver)}`;
  return `${database}, queues ${queues.map((q) => `${q.name} on ${kindOf(q.driver)}`).join(', ')}`;
}

/**
 * Where the socket is bound, as the OS reports it: `0.0.0.0:8080 (all interfaces)` rather than
 * Nest's getUrl(), which names 127.0.0.1 whatever the bind address.
 */
function boundAddress(app: INestApplication): string {
  const bound = (app.getHttpServer() as Server).address() as AddressInfo;
  const host = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
  const all = bound.address === '0.0.0.0' || bound.address === '::';
  return `http://${host}:${bound.port}${all ? ' (all interfaces)' : ''}`;
}

async function main(): Promise<void> {
  const config = configOrExit();
  for (const warning of removedSettingWarnings()) logger.warn(warning);
  // Before the app is built, so every span from the first request on is exported.
  const tracing = config.observability.otlpEndpoint ? startTracing({}) : undefined;
  const app = await createApp(config);
  // The last spans are flushed before the process exits.
  exitOnSignals(
    app,
    config.shutdownTimeoutMs,
    () => tracing?.shutdown().catch(() => undefined) ?? Promise.resolve(),
  );
  await app.listen(config.port, config.host);
  logger.log(
    `listening on ${boundAddress(app)} (role ${config.role}, ${describeStores(config)}, ${config.httpAdapter})${config.role === 'worker' ? '' : '; docs at /docs'}`,
  );
}

main().catch((error: unknown) => {
  // The file's path and setting are the whole story; a stack would bury them.
  if (error instanceof DatabaseStartupError) {
    console.error(`taskq: start-up failed: ${error.message}`);
    process.exit(1);
  }
  console.error('taskq: start-up failed:', error);
  process.exit(1);
});
