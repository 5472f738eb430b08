import { resolve } from 'node:path';
import { ConfigError } from '../common/config-error';
import {
  MAX_CONCURRENCY,
  MAX_PREFETCH,
  QUEUE_NAME_PATTERN,
  QUEUE_NAME_RULE,
} from '../common/queue-rules';
import { redactUrl } from '../common/redact-url';

export type AppRole = 'all' | 'api' | 'worker';
export type HttpAdapterKind = 'express' | 'fastify';

/** Everything taskq reads from the environment, parsed and validated once at boot. */
export interface AppConfig {
  port: number;
  host: string;
  role: AppRole;
  httpAdapter: HttpAdapterKind;
  databasePath: string;
  /** Which setting chose databasePath, for messages about the file: `DATABASE_PATH` or `default`. */
  databasePathFrom: 'DATABASE_PATH' | 'default';
  /**
   * DATABASE_CHECK: SQLite's check of the file at start-up (`quick_check`, `integrity_check`,
   * or none); a file that fails it is refused.
   */
  databaseCheck: 'quick' | 'full' | 'off';
  /** `postgres://...` switches the task store to PostgreSQL; unset means SQLite at databasePath. */
  databaseUrl?: string;
  migrationsRun: boolean;
  queue: {
    /**
     * QUEUE_DRIVER: the kind of the default driver when no topology file is given; unset, the
     * task table itself (`sqlite`, or `postgres` with DATABASE_URL). The queue module knows the
     * kinds; it checks this when it resolves the topology.
     */
    driver: string;
    /**
     * The queue every task goes to unless its handler names another: QUEUE_NAME, or `tasks`.
     * With a topology file and no QUEUE_NAME, the file's first queue once the topology is resolved.
     */
    name: string;
    /** Whether QUEUE_NAME was set. */
    nameGiven: boolean;
    /** QUEUE_TOPOLOGY, resolved: a file of drivers, queues and consumers. */
    topologyFile?: string;
    /** How long a delivery stays a worker's before a lease-based driver redelivers it. */
    leaseMs: number;
    /**
     * PUBLISH_TIMEOUT_MS: how long POST /tasks waits for the broker to take a stored task's
     * message before it answers 202 anyway (the reconciler publishes it once the broker is back).
     */
    publishTimeoutMs: number;
    /** The SQLite task file's synchronous pragma (QUEUE_SQLITE_SYNCHRONOUS). */
    sqlite: { synchronous: 'NORMAL' | 'FULL' };
    /**
     * url may carry credentials: never log it (see redactUrl). allowVolatile: accept a server
     * without an append-only file (REDIS_ALLOW_VOLATILE); appendfsync: the weakest policy
     * accepted (REDIS_APPENDFSYNC, default everysec).
     */
    redis: { url: string; allowVolatile: boolean; appendfsync: 'always' | 'everysec' | 'no' };
    /** May carry credentials: never log it (see redactUrl). */
    amqp: { url: string };
  };
  reconcile: {
    /** How often a worker looks for queued tasks whose message went missing; 0 = never. */
    intervalMs: number;
    /** A queued task untouched this long, or a running one whose claim went silent this long, is suspect. */
    afterMs: number;
  };
  worker: {
    concurrency: number;
    prefetch: number;
  };
  task: {
    maxAttempts: number;
    backoffMs: number;
    backoffMaxMs: number;
    /** Per-attempt time limit unless the task or its handler says otherwise; 0 = none. */
    timeoutMs: number;
    /** Terminal tasks older than this many days are deleted; 0 keeps them forever. */
    retentionDays: number;
    /** POST /tasks answers 429 while more tasks than this are queued; 0 = no limit. */
    maxQueueDepth: number;
  };
  callback: {
    /** HMAC-SHA256 key for the X-Taskq-Signature header; unsigned when empty. */
    secret: string;
    /** Allow callback URLs on loopback and private networks (tests, single-host setups). */
    allowPrivate: boolean;
    timeoutMs: number;
    maxAttempts: number;
  };
  shutdownTimeoutMs: number;
  logLevel: LogLevel;
  /** How task events reach the other processes (README, "Events across processes"). */
  events: {
    /** TASK_EVENTS_BUS: `auto` picks redis, then postgres, then the SQLite change feed. */
    bus: TaskEventsBusKind;
    /** TASK_EVENTS_POLL_MS: how often the SQLite change feed looks for other processes' events. */
    pollMs: number;
  };
  /** `GET /tasks/events`: how many streams, and how much unsent data each may hold. */
  eventStream: {
    /** Open streams per process; beyond, 429. */
    maxConnections: number;
    /** Open streams per client (API key, else IP address); beyond, 429. */
    maxConnectionsPerClient: number;
    /** A stream whose unsent data passes this many bytes is closed (a client that does not read). */
    maxBufferBytes: number;
  };
  /** Requests per client (API key, else IP address) per window; health endpoints are exempt. */
  rateLimit: {
    /** 0 turns rate limiting off. */
    limit: number;
    windowMs: number;
  };
  /** CORS origins allowed; empty means CORS off (no Access-Control-* headers), `*` any origin. */
  corsOrigins: string[];
  /** Bounds on request bodies, checked before anything walks them (see RequestBodyPipe). */
  input: {
    /** Largest request body in bytes (413 beyond). */
    maxBodyBytes: number;
    /** Deepest nesting of objects and arrays inside a task's `data` (400 beyond). */
    maxDataDepth: number;
    /** Most object keys in one task's `data`, counted at every level (400 beyond). */
    maxDataKeys: number;
  };
  auth: {
    /** API_KEYS_FILE: YAML or JSON list of hashed API keys (see src/auth); unset = none. */
    keysFile?: string;
    /** How often the key set (file and api_keys table) is read again, so a revoke takes hold. */
    refreshMs: number;
  };
  observability: {
    /** METRICS_ENABLED: serve `GET /metrics` (Prometheus). */
    metricsEnabled: boolean;
    /** LOG_FORMAT: `json` lines, `pretty`, or `auto` (pretty when stdout is a terminal). */
    logFormat: 'auto' | 'json' | 'pretty';
    /**
     * OTEL_EXPORTER_OTLP_ENDPOINT: traces go there over OTLP/HTTP; unset means no tracing.
     * May carry credentials: never log it.
     */
    otlpEndpoint?: string;
  };
}

export type TaskEventsBusKind = 'auto' | 'local' | 'sqlite' | 'postgres' | 'redis';

export type LogLevel = 'error' | 'warn' | 'log' | 'debug' | 'verbose';

export { ConfigError, redactUrl };

type Env = Record<string, string | undefined>;

function raw(env: Env, key: string): string | undefined {
  const value = env[key]?.trim();
  return value === undefined || value === '' ? undefined : value;
}

function int(env: Env, key: string, fallback: number, min: number, max: number): number {
  const value = raw(env, key);
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!/^-?\d+$/.test(value) || parsed < min || parsed > max) {
    throw new ConfigError(`${key}=${value} is invalid: expected an integer from ${min} to ${max}`);
  }
  return parsed;
}

function oneOf<T extends string>(env: Env, key: string, fallback: T, allowed: readonly T[]): T {
  const value = raw(env, key);
  if (value === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(value)) {
    throw new ConfigError(`${key}=${value} is invalid: expected one of ${allowed.join(', ')}`);
  }
  return value as T;
}

function optionalPath(env: Env, key: string): string | undefined {
  const value = raw(env, key);
  return value === undefined ? undefined : resolve(value);
}

function bool(env: Env, key: string, fallback: boolean): boolean {
  const value = raw(env, key)?.toLowerCase();
  if (value === undefined) return fallback;
  if (['true', '1', 'yes'].includes(value)) return true;
  if (['false', '0', 'no'].includes(value)) return false;
  throw new ConfigError(`${key}=${value} is invalid: expected true or false`);
}

function queueName(env: Env, key: string, fallback: string): string {
  const value = raw(env, key) ?? fallback;
  if (!QUEUE_NAME_PATTERN.test(value)) {
    throw new ConfigError(`${key}=${value} is invalid: expected ${QUEUE_NAME_RULE}`);
  }
  return value;
}

/** A broker URL with one of `protocols`; the message never repeats a password. */
function brokerUrl(env: Env, key: string, fallback: string, protocols: string[]): string {
  const value = raw(env, key) ?? fallback;
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new ConfigError(`${key} is invalid: not a URL`);
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(
      `${key}=${redactUrl(value)} is invalid: expected a ${protocols.map((p) => `${p}//`).join(' or ')} URL`,
    );
  }
  return value;
}

function databaseUrl(env: Env): string | undefined {
  const value = raw(env, 'DATABASE_URL');
  if (value === undefined) return undefined;
  if (!/^postgres(ql)?:\/\/[^\s]+$/.test(value)) {
    throw new ConfigError(
      `DATABASE_URL=${redactUrl(value)} is invalid: expected postgres://user@host:port/database (unset for SQLite)`,
    );
  }
  return value;
}

/** CORS_ORIGINS: a comma-separated list of origins (`https://app.example.com`), or `*`. */
function corsOrigins(env: Env): string[] {
  const value = raw(env, 'CORS_ORIGINS');
  if (value === undefined) return [];
  const origins = value
    .split(',')
    .map((origin) => origin.trim())
    .filter((origin) => origin !== '');
  for (const origin of origins) {
    if (origin !== '*' && !/^https?:\/\/[^\s/]+$/.test(origin)) {
      throw new ConfigError(
        `CORS_ORIGINS=${value} is invalid: expected * or origins such as https://app.example.com, comma-separated`,
      );
    }
  }
  return origins;
}

/**
 * Parses the environment into a typed config. Throws {@link ConfigError} on the first bad value.
 * Services never read `process.env`; they get this object injected.
 */
export function loadConfig(env: Env = process.env): AppConfig {
  const databasePath = resolve(raw(env, 'DATABASE_PATH') ?? './data/tasks.db');
  return {
    port: int(env, 'PORT', 8080, 0, 65535),
    // Loopback unless told: an open service (no API keys) should not face the network by default.
    host: raw(env, 'HOST') ?? '127.0.0.1',
    role: oneOf(env, 'APP_ROLE', 'all', ['all', 'api', 'worker'] as const),
    httpAdapter: oneOf(env, 'HTTP_ADAPTER', 'express', ['express', 'fastify'] as const),
    databasePath,
    databasePathFrom: raw(env, 'DATABASE_PATH') === undefined ? 'default' : 'DATABASE_PATH',
    databaseCheck: oneOf(env, 'DATABASE_CHECK', 'quick', ['quick', 'full', 'off'] as const),
    databaseUrl: databaseUrl(env),
    migrationsRun: bool(env, 'MIGRATIONS_RUN', true),
    queue: {
      // The task table is the queue by default, on whichever database holds it.
      driver: raw(env, 'QUEUE_DRIVER') ?? (databaseUrl(env) ? 'postgres' : 'sqlite'),
      name: queueName(env, 'QUEUE_NAME', 'tasks'),
      nameGiven: raw(env, 'QUEUE_NAME') !== undefined,
      topologyFile: optionalPath(env, 'QUEUE_TOPOLOGY'),
      leaseMs: int(env, 'QUEUE_LEASE_MS', 30_000, 1000, 86_400_000),
      publishTimeoutMs: int(env, 'PUBLISH_TIMEOUT_MS', 3000, 100, 600_000),
      sqlite: {
        synchronous: oneOf(env, 'QUEUE_SQLITE_SYNCHRONOUS', 'NORMAL', ['NORMAL', 'FULL'] as const),
      },
      redis: {
        url: brokerUrl(env, 'REDIS_URL', 'redis://127.0.0.1:6379', ['redis:', 'rediss:']),
        allowVolatile: bool(env, 'REDIS_ALLOW_VOLATILE', false),
        appendfsync: oneOf(env, 'REDIS_APPENDFSYNC', 'everysec', [
          'always',
          'everysec',
          'no',
        ] as const),
      },
      amqp: {
        url: brokerUrl(env, 'AMQP_URL', 'amqp://guest:guest@127.0.0.1:5672', ['amqp:', 'amqps:']),
      },
    },
    reconcile: {
      intervalMs: int(env, 'RECONCILE_INTERVAL_MS', 30_000, 0, 86_400_000),
      afterMs: int(env, 'RECONCILE_AFTER_MS', 300_000, 1000, 86_400_000),
    },
    worker: {
      concurrency: int(env, 'WORKER_CONCURRENCY', 2, 1, MAX_CONCURRENCY),
      prefetch: int(env, 'WORKER_PREFETCH', 5, 1, MAX_PREFETCH),
    },
    task: {
      maxAttempts: int(env, 'TASK_MAX_ATTEMPTS', 3, 1, 100),
      backoffMs: int(env, 'TASK_BACKOFF_MS', 1000, 0, 3_600_000),
      backoffMaxMs: int(env, 'TASK_BACKOFF_MAX_MS', 60_000, 0, 86_400_000),
      timeoutMs: int(env, 'TASK_TIMEOUT_MS', 0, 0, 86_400_000),
      retentionDays: int(env, 'TASK_RETENTION_DAYS', 7, 0, 36_500),
      maxQueueDepth: int(env, 'QUEUE_MAX_DEPTH', 0, 0, 1_000_000_000),
    },
    callback: {
      secret: raw(env, 'CALLBACK_SECRET') ?? '',
      allowPrivate: bool(env, 'CALLBACK_ALLOW_PRIVATE', false),
      timeoutMs: int(env, 'CALLBACK_TIMEOUT_MS', 10_000, 100, 300_000),
      maxAttempts: int(env, 'CALLBACK_MAX_ATTEMPTS', 8, 1, 100),
    },
    shutdownTimeoutMs: int(env, 'SHUTDOWN_TIMEOUT_MS', 10_000, 0, 3_600_000),
    logLevel: oneOf(env, 'LOG_LEVEL', 'log', ['error', 'warn', 'log', 'debug', 'verbose'] as const),
    events: {
      bus: oneOf(env, 'TASK_EVENTS_BUS', 'auto', [
        'auto',
        'local',
        'sqlite',
        'postgres',
        'redis',
      ] as const),
      pollMs: int(env, 'TASK_EVENTS_POLL_MS', 100, 10, 60_000),
    },
    eventStream: {
      maxConnections: int(env, 'SSE_MAX_CONNECTIONS', 1000, 0, 1_000_000),
      maxConnectionsPerClient: int(env, 'SSE_MAX_CONNECTIONS_PER_CLIENT', 10, 0, 1_000_000),
      maxBufferBytes: int(env, 'SSE_MAX_BUFFER_BYTES', 256 * 1024, 1024, 1024 * 1024 * 1024),
    },
    rateLimit: {
      limit: int(env, 'RATE_LIMIT', 1000, 0, 1_000_000_000),
      windowMs: int(env, 'RATE_LIMIT_WINDOW_MS', 1000, 1, 86_400_000),
    },
    corsOrigins: corsOrigins(env),
    input: {
      maxBodyBytes: int(env, 'MAX_BODY_BYTES', 1024 * 1024, 1024, 256 * 1024 * 1024),
      maxDataDepth: int(env, 'MAX_DATA_DEPTH', 32, 1, 1000),
      maxDataKeys: int(env, 'MAX_DATA_KEYS', 10_000, 1, 10_000_000),
    },
    auth: {
      keysFile: optionalPath(env, 'API_KEYS_FILE'),
      refreshMs: int(env, 'API_KEYS_REFRESH_MS', 5000, 100, 3_600_000),
    },
    observability: {
      metricsEnabled: bool(env, 'METRICS_ENABLED', true),
      logFormat: oneOf(env, 'LOG_FORMAT', 'auto', ['auto', 'json', 'pretty'] as const),
      otlpEndpoint: raw(env, 'OTEL_EXPORTER_OTLP_ENDPOINT'),
    },
  };
}
