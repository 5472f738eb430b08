import { type DynamicModule } from '@nestjs/common';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { LoggerModule, PinoLogger } from 'nestjs-pino';
import { Store, storage } from 'nestjs-pino/storage';
import pino, { type Level, type Logger as Pino } from 'pino';
import type { AppConfig, LogLevel } from '../config/app.config';
import { logScrubber, urlSecrets } from './log-scrubber';
import { prettyLine } from './pretty-stream';

/** LOG_LEVEL's words (Nest's) as pino levels. */
const PINO_LEVEL: Record<LogLevel, Level> = {
  error: 'error',
  warn: 'warn',
  log: 'info',
  debug: 'debug',
  verbose: 'trace',
};
/** Probes and scrapes answer every few seconds: their request lines only at debug. */
const QUIET_PATHS = /^\/(health(\/(live|ready))?|metrics)(\?|$)/;
/** A caller's X-Request-Id is kept when it looks like an id, else one is made. */
const REQUEST_ID = /^[\w.:-]{1,128}$/;
/** Config keys whose string values are secrets (callback key, passwords, API keys, tokens). */
const SECRET_KEY = /secret|password|token|apikey|apikeys|^keys?$/i;

/** The fields every log line about a task carries. */
export interface TaskLogFields {
  taskId: string;
  action: string;
  attempt: number;
  queue: string;
}

/**
 * nestjs-pino for the whole application: JSON lines (pretty on a terminal, or LOG_FORMAT), the
 * level from LOG_LEVEL, a request id on every line logged while serving a request (and echoed as
 * X-Request-Id), secrets scrubbed from every line before it is written.
 */
export function loggingModule(config: AppConfig): DynamicModule {
  const logger = rootLogger(config);
  return LoggerModule.forRoot({
    pinoHttp: {
      logger,
      quietReqLogger: true,
      customAttributeKeys: { reqId: 'requestId' },
      genReqId: (req: IncomingMessage, res: ServerResponse) => requestId(req, res),
      customLogLevel: (req, res, error) => {
        // "Not now" answers (a store or broker down, a rate limit) are logged by their cause, once
        // per interval; a line per refused request would flood the log during an outage.
        if (!error && (res.statusCode === 503 || res.statusCode === 429)) return 'debug';
        if (error || res.statusCode >= 500) return 'error';
        if (res.statusCode >= 400) return 'warn';
        return QUIET_PATHS.test(req.url ?? '') ? 'debug' : 'info';
      },
      // Method and path only: headers carry API keys and cookies, bodies carry task data.
      serializers: {
        req: (req: { id?: unknown; method?: string; url?: string }) => ({
          id: req.id,
          method: req.method,
          url: req.url,
        }),
        res: (res: { statusCode?: number }) => ({ statusCode: res.statusCode }),
      },
    },
  });
}

const ID = Symbol('taskq:request-id');

/**
 * The request's id: the caller's X-Request-Id when it looks like one, else a new UUID; the
 * same id however often it is asked for, echoed in the response's X-Request-Id. bootstrap.ts
 * gives it to the HTTP server (first listener) and to fastify, so both adapters log the same.
 */
export function requestId(req: IncomingMessage, res?: ServerResponse): string {
  const marked = req as IncomingMessage & { [ID]?: string };
  if (marked[ID] === undefined) {
    const given = req.headers['x-request-id'];
    marked[ID] = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    if (res && !res.headersSent) res.setHeader('X-Request-Id', marked[ID]);
  }
  return marked[ID];
}

/**
 * Runs `work` with `fields` on every line logged inside it, by taskq or by the handler (through
 * Nest's Logger): the worker's lines about a task say which task, action, attempt and queue.
 */
export function withTaskLogFields<T>(fields: TaskLogFields, work: () => T): T {
  const root = PinoLogger.root as Pino | undefined;
  if (!root) return work();
  return storage.run(new Store(root.child(fields)), work);
}

function rootLogger(config: AppConfig): Pino {
  const scrub = logScrubber(secretsIn(config));
  const pretty =
    config.observability.logFormat === 'pretty' ||
    (config.observability.logFormat === 'auto' && process.stdout.isTTY === true);
  const colour = pretty && process.stdout.isTTY === true;
  return pino(
    {
      level: PINO_LEVEL[config.logLevel],
      base: { pid: process.pid },
      messageKey: 'msg',
    },
    {
      write: (line: string) => {
        const clean = scrub(line);
        process.stdout.write(pretty ? prettyLine(clean, colour) : clean);
      },
    },
  );
}

/** Every value in the config that is a secret or holds one, for exact-match scrubbing. */
export function secretsIn(value: unknown, key = ''): string[] {
  if (typeof value === 'string') {
    return [...urlSecrets(/^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : undefined)].concat(
      SECRET_KEY.test(key) ? [value] : [],
    );
  }
  if (Array.isArray(value)) return value.flatMap((item) => secretsIn(item, key));
  if (value && typeof value === 'object') {
    return Object.entries(value).flatMap(([k, v]) => secretsIn(v, k));
  }
  return [];
}
