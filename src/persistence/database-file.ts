import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import type { AppConfig } from '../config/app.config';

/**
 * The SQLite file and the setting that chose it, for every message about the file: an operator
 * reading "database /srv/x.db (DATABASE_PATH)" knows what to fix and where.
 */
export function databaseFileSetting(config: AppConfig): string {
  return config.databasePathFrom === 'DATABASE_PATH'
    ? `${config.databasePath} (DATABASE_PATH)`
    : `${config.databasePath} (the default; set DATABASE_PATH to choose another file)`;
}

/** The task database could not be opened or failed its check at start-up. */
export class DatabaseStartupError extends Error {
  override readonly name = 'DatabaseStartupError';
}

/** How long the start-up check may run before the service starts without its verdict. */
export const DATABASE_CHECK_TIMEOUT_MS = 60_000;

/** Rows of problems at most that quick_check/integrity_check report; the first few tell enough. */
const CHECK_MAX_ERRORS = 10;

/**
 * The check's program, on a thread of its own so a large file neither blocks the event loop
 * nor holds the start-up past the bound: on timeout the thread is left to finish and ignored.
 */
const CHECK_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.module);
let db;
try {
  db = new Database(workerData.path, { fileMustExist: true });
  db.pragma('busy_timeout = 5000');
  const rows = db.pragma(workerData.pragma + '(' + workerData.maxErrors + ')', { simple: false });
  parentPort.postMessage({ problems: rows.map((row) => String(Object.values(row)[0])) });
} catch (error) {
  parentPort.postMessage({ error: { message: error.message, code: error.code } });
} finally {
  if (db) db.close();
}
`;

export type CheckMode = 'quick' | 'full';

export type CheckResult =
  { ok: true } | { ok: false; problems: string[] } | { ok: undefined; timedOut: true };

/**
 * SQLite's `quick_check` (pages, b-trees, record formats: seconds even on large files) or
 * `integrity_check` (also every index against its table) on `path`. Rejects with SQLite's error
 * when the file cannot be read as a database at all (not a database, unreadable).
 */
export function checkDatabaseFile(
  path: string,
  mode: CheckMode,
  timeoutMs = DATABASE_CHECK_TIMEOUT_MS,
): Promise<CheckResult> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(CHECK_SOURCE, {
      eval: true,
      workerData: {
        path,
        pragma: mode === 'full' ? 'integrity_check' : 'quick_check',
        maxErrors: CHECK_MAX_ERRORS,
        module: require.resolve('better-sqlite3'),
      },
    });
    worker.unref();
    const timer = setTimeout(() => {
      void worker.terminate();
      resolve({ ok: undefined, timedOut: true });
    }, timeoutMs);
    timer.unref();
    worker.once(
      'message',
      (answer: { problems?: string[]; error?: { message: string; code?: string } }) => {
        clearTimeout(timer);
        if (answer.error) {
          return reject(
            Object.assign(new Error(answer.error.message), { code: answer.error.code }),
          );
        }
        const problems = answer.problems ?? [];
        resolve(
          problems.length === 1 && problems[0] === 'ok' ? { ok: true } : { ok: false, problems },
        );
      },
    );
    worker.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

export interface OpenCheckLog {
  log(message: string): void;
  warn(message: string): void;
}

/**
 * Everything about the SQLite file that should stop a start-up, said with the path and the
 * setting that chose it: a folder that cannot be created, a file that cannot be opened or
 * written (read-only file system), a file that is not a database, a file that fails
 * DATABASE_CHECK. A missing file is created, and said so: after a lost file that is the moment
 * an operator must notice, not an empty service later.
 */
export async function prepareDatabaseFile(config: AppConfig, log: OpenCheckLog): Promise<void> {
  const path = config.databasePath;
  if (config.databaseUrl || path === ':memory:') return;
  const where = databaseFileSetting(config);
  const refuse = (reason: string): never => {
    throw new DatabaseStartupError(`database ${where}: ${reason}`);
  };
  try {
    mkdirSync(dirname(path), { recursive: true });
  } catch (error) {
    refuse(`its folder cannot be created: ${(error as Error).message}`);
  }
  const existed = existsSync(path);
  if (!existed) log.warn(`database ${where} does not exist: creating a new, empty one`);
  let db: Database.Database | undefined;
  try {
    db = new Database(path);
    // Reads the header and turns on WAL (a write), so an unreadable, non-database or read-only
    // file fails here, where the message can name it.
    db.pragma('journal_mode = WAL');
  } catch (error) {
    refuse((error as Error).message);
  } finally {
    db?.close();
  }
  if (!existed || config.databaseCheck === 'off') return;
  const check = config.databaseCheck === 'full' ? 'integrity_check' : 'quick_check';
  const started = Date.now();
  let result: CheckResult;
  try {
    result = await checkDatabaseFile(path, config.databaseCheck);
  } catch (error) {
    // A page so damaged the check cannot walk past it is as corrupt as one it reports.
    const { code } = error as { code?: unknown };
    if (typeof code !== 'string' || !code.startsWith('SQLITE_CORRUPT')) {
      return refuse(`${check} could not read it: ${(error as Error).message}`);
    }
    result = { ok: false, problems: [(error as Error).message] };
  }
  if (result.ok === false) {
    refuse(
      `${check} found it corrupt (${result.problems.slice(0, 3).join('; ').replace(/\s+/g, ' ')}). Restore it from a ` +
        `backup (README: Running it in production), or start with DATABASE_CHECK=off to serve it anyway`,
    );
  }
  if (result.ok === undefined) {
    log.warn(
      `database ${where}: ${check} did not finish in ${DATABASE_CHECK_TIMEOUT_MS} ms; starting without its verdict`,
    );
  } else {
    log.log(`database ${path}: ${check} ok in ${Date.now() - started} ms`);
  }
}

/** Device and inode: which file a path names right now. */
export interface FileIdentity {
  dev: number;
  ino: number;
}

export function fileIdentity(path: string): FileIdentity | undefined {
  try {
    const { dev, ino } = statSync(path);
    return { dev, ino };
  } catch {
    return undefined;
  }
}

/**
 * Why the file at `path` is no longer the one the process opened (`opened`), or undefined
 * while it still is. A deleted or replaced file keeps taking writes through the open handle,
 * and they vanish with the process.
 */
export function fileReplaced(path: string, opened: FileIdentity): string | undefined {
  const now = fileIdentity(path);
  if (!now) {
    return `the database file ${path} was deleted while the service had it open; writes would be lost. Restore it from a backup and restart`;
  }
  if (now.dev !== opened.dev || now.ino !== opened.ino) {
    return `the database file ${path} was replaced by another file while the service had it open; writes would go to the old one. Restart to use the new file`;
  }
  return undefined;
}
