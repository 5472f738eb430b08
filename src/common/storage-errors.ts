/** What an operator must fix when the task store refuses a write that was not the client's fault. */
export type StorageFault = 'disk full' | 'database unavailable';

/**
 * The task database cannot be used as it is: its file was deleted or replaced under the running
 * process, or a start-up check refused it. Answered like any other storage fault (503).
 */
export class DatabaseUnavailableError extends Error {
  override readonly name = 'DatabaseUnavailableError';
}

/** PostgreSQL SQLSTATEs (and classes) that mean the server, not the request, is the problem. */
const PG_DISK_FULL = '53100';
const PG_UNAVAILABLE_CLASSES = ['08', '53', '57P'];
/** Socket errors of a database connection (pg, or any client using node's net). */
const NET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
]);
/** pg and pg-pool report a lost or slow connection by message, without a code. */
const PG_CONNECTION_MESSAGES =
  /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Connection is not established)/;

function faultOf(error: object): StorageFault | undefined {
  if (error instanceof DatabaseUnavailableError) return 'database unavailable';
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (code === 'SQLITE_FULL' || code === 'ENOSPC' || code === PG_DISK_FULL) return 'disk full';
    if (/^SQLITE_(IOERR|READONLY|CANTOPEN|NOTADB|CORRUPT|BUSY|PROTOCOL|NOLFS)/.test(code)) {
      return 'database unavailable';
    }
    if (NET_CODES.has(code)) return 'database unavailable';
    if (/^[0-9A-Z]{5}$/.test(code) && PG_UNAVAILABLE_CLASSES.some((c) => code.startsWith(c))) {
      return 'database unavailable';
    }
  }
  const message = (error as { message?: unknown }).message;
  if (typeof message === 'string' && PG_CONNECTION_MESSAGES.test(message)) {
    return 'database unavailable';
  }
  return undefined;
}

/**
 * The storage fault behind `error`, if any: the error itself, or what it wraps (TypeORM's
 * `driverError`, an Error `cause`, e.g. the sqlite queue driver's DriverUnavailableError over the
 * shared file's SqliteError). Constraint violations, bad SQL and anything else are not faults
 * of the store, so they stay undefined and keep their own answers.
 */
export function storageFault(error: unknown): StorageFault | undefined {
  let current: unknown = error;
  let viaQueueDriver = false;
  for (let depth = 0; depth < 5 && typeof current === 'object' && current !== null; depth++) {
    const fault = faultOf(current);
    // Behind a queue driver's error only SQLite's codes name the database (the sqlite driver's
    // file may be the task file); a socket error there is the broker's, not the database's.
    const sqlite = String((current as { code?: unknown }).code).startsWith('SQLITE_');
    if (fault && (!viaQueueDriver || sqlite)) return fault;
    viaQueueDriver ||= (current as { name?: unknown }).name === 'DriverUnavailableError';
    const wrapper = current as { driverError?: unknown; cause?: unknown };
    current = wrapper.driverError ?? wrapper.cause;
  }
  return undefined;
}
