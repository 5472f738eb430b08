import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { ConfigError } from '../../common/config-error';
import { MAX_CONCURRENCY, MAX_PREFETCH } from '../../common/queue-rules';
import {
  DRIVER_KINDS,
  type DriverEnvironment,
  type DriverKind,
  type DriverKindDefinition,
  driverKindDefinition,
  type OptionFail,
} from '../drivers';

/** A named driver instance; several queues may share one. Options may hold credentials. */
export interface TopologyDriver {
  name: string;
  kind: DriverKind;
  options: Record<string, unknown>;
}

/** A queue and the driver that carries it. */
export interface TopologyQueue {
  name: string;
  driver: string;
}

/** A consumer this process runs in the worker roles. */
export interface TopologyConsumer {
  name: string;
  queue: string;
  concurrency: number;
  prefetch: number;
}

/** What the queue module is built from: the environment's one queue, or a topology file. */
export interface QueueTopology {
  /** `environment` or the topology file's path, for messages. */
  source: string;
  drivers: TopologyDriver[];
  queues: TopologyQueue[];
  /** Queues without an entry here get one consumer with WORKER_CONCURRENCY / WORKER_PREFETCH. */
  consumers: TopologyConsumer[];
  /** Where tasks go unless their handler names a queue (QUEUE_NAME). */
  defaultQueue: string;
}

/** The parsed environment a topology is resolved from (config's values, plain). */
export interface TopologyInput {
  role: string;
  queue: DriverEnvironment & {
    /** QUEUE_DRIVER, not yet checked against the known kinds. */
    driver: string;
    name: string;
    /** Whether QUEUE_NAME was set: with a topology file it must then name one of its queues. */
    nameGiven: boolean;
    /** QUEUE_TOPOLOGY, an absolute path. */
    topologyFile?: string;
  };
  worker: { concurrency: number; prefetch: number };
}

const KIND_PREFIX = 'queue.driver.';
/**
 * Entry names are queue names without ':', because ':' joins a namespace to a name in
 * references (`app.queue:broker`).
 */
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/**
 * The topology this process runs: QUEUE_TOPOLOGY's file, or the one driver, queue and consumer
 * the environment describes. Also refuses a driver that lives in one process (memory) when
 * API and workers are separate processes.
 */
export function resolveTopology(input: TopologyInput): QueueTopology {
  const file = input.queue.topologyFile;
  const topology = file
    ? loadTopologyFile(file, input, input.queue.nameGiven ? input.queue.name : undefined)
    : envTopology(input);
  const local = topology.drivers.find((d) => driverKindDefinition(d.kind)?.inProcess);
  if (local && input.role !== 'all') {
    // A separate API or worker process would never meet the messages of an in-process driver.
    throw new ConfigError(
      file
        ? `APP_ROLE=${input.role} is invalid with ${file}: driver "${local.name}" is ${KIND_PREFIX}${local.kind}, which needs APP_ROLE=all`
        : `APP_ROLE=${input.role} is invalid with QUEUE_DRIVER=${local.kind}: the ${local.kind} driver needs APP_ROLE=all`,
    );
  }
  return topology;
}

/** Without a topology file: one driver (`default`), one queue, one consumer. */
export function envTopology(input: TopologyInput): QueueTopology {
  const { queue, worker } = input;
  const definition = driverKindDefinition(queue.driver);
  if (!definition) {
    throw new ConfigError(
      `QUEUE_DRIVER=${queue.driver} is invalid: expected one of ${DRIVER_KINDS.join(', ')}`,
    );
  }
  return {
    source: 'environment',
    drivers: [{ name: 'default', kind: definition.kind, options: definition.envOptions(queue) }],
    queues: [{ name: queue.name, driver: 'default' }],
    consumers: [
      {
        name: queue.name,
        queue: queue.name,
        concurrency: worker.concurrency,
        prefetch: worker.prefetch,
      },
    ],
    defaultQueue: queue.name,
  };
}

/**
 * Reads a Wippy-style topology file:
 *
 *     version: "1.0"
 *     namespace: app.queue          # optional; references may say `app.queue:name`
 *     entries:
 *       - { name: broker, kind: queue.driver.redis, options: { leaseMs: 30000 } }
 *       - { name: emails, kind: queue.queue, driver: broker }
 *       - { name: email-workers, kind: queue.consumer, queue: emails, concurrency: 8, prefetch: 16 }
 *
 * Every problem is a ConfigError naming the file, the entry and the field. Driver options not
 * given fall back to the environment (REDIS_URL, AMQP_URL, QUEUE_LEASE_MS...), so credentials
 * can stay out of the file.
 */
export function loadTopologyFile(
  path: string,
  input: TopologyInput,
  explicitQueueName: string | undefined,
): QueueTopology {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`QUEUE_TOPOLOGY=${path} cannot be read: ${(error as Error).message}`);
  }
  let document: unknown;
  try {
    document = parse(text);
  } catch (error) {
    const first = (error as Error).message.split('\n')[0];
    throw new ConfigError(`QUEUE_TOPOLOGY=${path} is not valid YAML: ${first}`);
  }
  return parseTopology(document, path, input, explicitQueueName);
}

/** Validates a parsed topology document; exported for tests. */
export function parseTopology(
  document: unknown,
  path: string,
  input: TopologyInput,
  explicitQueueName?: string,
): QueueTopology {
  const fail = (where: string, message: string): never => {
    throw new ConfigError(`QUEUE_TOPOLOGY=${path}: ${where}: ${message}`);
  };
  if (!isRecord(document)) return fail('document', 'expected a mapping with "entries"');
  const namespace = document.namespace;
  if (namespace !== undefined && typeof namespace !== 'string') {
    fail('namespace', 'expected a string');
  }
  const entries = document.entries;
  if (!Array.isArray(entries) || entries.length === 0) {
    return fail('entries', 'expected a non-empty list');
  }
  const ref = (value: string): string =>
    namespace && value.startsWith(`${namespace as string}:`)
      ? value.slice((namespace as string).length + 1)
      : value;

  const topology: QueueTopology = {
    source: path,
    drivers: [],
    queues: [],
    consumers: [],
    defaultQueue: '',
  };
  const names = new Set<string>();
  const pendingQueues: { at: string; queue: TopologyQueue }[] = [];
  const pendingConsumers: { at: string; consumer: TopologyConsumer }[] = [];
  for (const [index, entry] of entries.entries()) {
    let at = `entries[${index}]`;
    if (!isRecord(entry)) return fail(at, 'expected a mapping');
    const { name, kind } = entry;
    if (typeof name !== 'string' || !NAME.test(name)) {
      fail(`${at}.name`, "expected 1-64 letters, digits, '_', '.' or '-'");
    }
    at = `entry "${name as string}"`;
    if (names.has(name as string)) fail(`${at}.name`, 'is used by an earlier entry');
    names.add(name as string);
    const field = (key: string): string => `${at}.${key}`;
    const allow = (keys: string[]): void => {
      for (const key of Object.keys(entry)) {
        if (![...keys, 'name', 'kind', 'meta'].includes(key)) {
          fail(field(key), `is not a field of ${String(kind)}`);
        }
      }
    };
    const reference = (key: string): string => {
      const value = entry[key];
      if (typeof value !== 'string' || value === '') {
        return fail(field(key), 'expected the name of an entry');
      }
      return ref(value);
    };
    const count = (key: string, fallback: number, max: number): number => {
      const value = entry[key] ?? fallback;
      if (!Number.isInteger(value) || (value as number) < 1 || (value as number) > max) {
        fail(field(key), `expected an integer from 1 to ${max}, got ${JSON.stringify(value)}`);
      }
      return value as number;
    };

    if (typeof kind === 'string' && kind.startsWith(KIND_PREFIX)) {
      const definition = driverKindDefinition(kind.slice(KIND_PREFIX.length));
      if (!definition) {
        const known = DRIVER_KINDS.map((k) => `${KIND_PREFIX}${k}`).join(', ');
        return fail(field('kind'), `unknown driver kind ${kind} (known: ${known})`);
      }
      allow(['options']);
      const options = entry.options ?? {};
      if (!isRecord(options)) return fail(field('options'), 'expected a mapping');
      topology.drivers.push({
        name: name as string,
        kind: definition.kind,
        options: driverOptions(definition, options, input, (key, message) =>
          fail(field(`options.${key}`), message),
        ),
      });
    } else if (kind === 'queue.queue') {
      allow(['driver']);
      pendingQueues.push({ at, queue: { name: name as string, driver: reference('driver') } });
    } else if (kind === 'queue.consumer') {
      allow(['queue', 'concurrency', 'prefetch']);
      const consumer: TopologyConsumer = {
        name: name as string,
        queue: reference('queue'),
        concurrency: count('concurrency', input.worker.concurrency, MAX_CONCURRENCY),
        prefetch: count('prefetch', input.worker.prefetch, MAX_PREFETCH),
      };
      pendingConsumers.push({ at, consumer });
    } else {
      fail(
        field('kind'),
        `expected ${KIND_PREFIX}${DRIVER_KINDS.join('|')}, queue.queue or queue.consumer, got ${JSON.stringify(kind)}`,
      );
    }
  }
  // References are checked once every entry is known, so the order of entries does not matter.
  const drivers = new Set(topology.drivers.map((d) => d.name));
  for (const { at, queue } of pendingQueues) {
    if (!drivers.has(queue.driver))
      fail(`${at}.driver`, `no queue.driver.* entry is named "${queue.driver}"`);
    topology.queues.push(queue);
  }
  const queues = new Set(topology.queues.map((q) => q.name));
  for (const { at, consumer } of pendingConsumers) {
    if (!queues.has(consumer.queue))
      fail(`${at}.queue`, `no queue.queue entry is named "${consumer.queue}"`);
    topology.consumers.push(consumer);
  }
  if (topology.queues.length === 0) fail('entries', 'declare at least one queue.queue entry');
  if (explicitQueueName !== undefined && !queues.has(explicitQueueName)) {
    throw new ConfigError(
      `QUEUE_NAME=${explicitQueueName} is invalid: ${path} declares no queue.queue entry with that name`,
    );
  }
  topology.defaultQueue = explicitQueueName ?? topology.queues[0].name;
  return topology;
}

/** A driver entry's options, checked, with the environment's values filling the gaps. */
function driverOptions(
  definition: DriverKindDefinition,
  given: Record<string, unknown>,
  input: TopologyInput,
  fail: OptionFail,
): Record<string, unknown> {
  for (const key of Object.keys(given)) {
    if (!definition.optionKeys.includes(key)) {
      fail(key, `is not an option of ${KIND_PREFIX}${definition.kind}`);
    }
  }
  const options = { ...definition.envOptions(input.queue), ...given };
  return definition.validateOptions ? definition.validateOptions(options, fail) : options;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
