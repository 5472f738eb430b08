import { spawnSync } from 'node:child_process';

/** A server a suite needs, named for the skip message. */
export interface RequiredService {
  name: string;
  host: string;
  port: number;
}

export const REDIS_SERVICE: RequiredService = { name: 'Redis', host: '127.0.0.1', port: 6379 };
export const POSTGRES_SERVICE: RequiredService = {
  name: 'PostgreSQL',
  host: '127.0.0.1',
  port: 5432,
};
/** The PostgreSQL server of a suite's database URL, for a suite that may be pointed elsewhere. */
export function postgresServiceAt(url: string): RequiredService {
  const server = new URL(url);
  return { name: 'PostgreSQL', host: server.hostname, port: Number(server.port || 5432) };
}
export const RABBITMQ_SERVICE: RequiredService = {
  name: 'RabbitMQ',
  host: '127.0.0.1',
  port: 5672,
};

/**
 * Whether a TCP connection to the service opens within `timeoutMs`. Synchronous (a child
 * process does the connect) because Jest must know while it collects tests whether to skip them.
 */
export function isServiceReachable(service: RequiredService, timeoutMs = 1500): boolean {
  const probe =
    `const s = require('node:net').connect(${service.port}, ${JSON.stringify(service.host)});` +
    `s.setTimeout(${timeoutMs}, () => process.exit(1));` +
    `s.on('connect', () => process.exit(0)); s.on('error', () => process.exit(1));`;
  const result = spawnSync(process.execPath, ['-e', probe], { timeout: timeoutMs + 1000 });
  return result.status === 0;
}

/**
 * `describe` for a suite that needs a live server. When the server is unreachable the suite is
 * skipped with a message saying so, except under CI=true, where it fails: CI must never pass
 * because a broker was missing.
 */
export function describeWithService(
  service: RequiredService,
  title: string,
  suite: () => void,
): void {
  if (isServiceReachable(service)) {
    describe(title, suite);
    return;
  }
  const where = `${service.name} at ${service.host}:${service.port}`;
  if (process.env.CI === 'true') {
    describe(title, () => {
      it(`needs ${where}`, () => {
        throw new Error(`${where} is unreachable, and CI=true makes a missing service a failure`);
      });
    });
    return;
  }
  console.warn(`skipping "${title}": ${where} is unreachable (set CI=true to fail instead)`);
  describe.skip(title, suite);
}
