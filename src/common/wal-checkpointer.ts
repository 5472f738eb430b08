import { Worker } from 'node:worker_threads';

/**
 * WAL pages the writing connection lets pile up before it checkpoints by itself (SQLite's
 * default is 1000). The thread copies pages back as they come, but under constant writes a
 * passive checkpoint never reaches the log's end, and only one that does lets the log restart
 * from its beginning. The committing connection does that at this size; by then the thread has
 * copied all but the last few milliseconds of pages, so little is left to do on the event loop.
 * It also bounds the log if the thread dies.
 */
export const BACKSTOP_AUTOCHECKPOINT_PAGES = 20_000;

/**
 * The thread's whole program. Plain JavaScript evaluated as a worker, so it runs the same from
 * dist/ and from TypeScript sources under test; better-sqlite3 comes by its resolved path.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.path, { fileMustExist: true });
db.pragma('busy_timeout = 0');
db.pragma('synchronous = ' + workerData.synchronous);
const checkpoint = () => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch (error) {
    // Busy (another checkpointer, a writer resetting the log): the next tick tries again.
  }
};
const timer = setInterval(checkpoint, workerData.intervalMs);
parentPort.on('message', () => {
  clearInterval(timer);
  checkpoint();
  db.close();
  parentPort.close();
});
`;

/**
 * Checkpoints one WAL database from a thread of its own. A checkpoint copies committed pages
 * from the log into the database file and, with synchronous=NORMAL, fsyncs it: done by the
 * committing connection (SQLite's autocheckpoint), that stalled the event loop for
 * milliseconds every thousand pages and cost a third of enqueue CPU. PASSIVE checkpoints never
 * wait for writers or readers, so the writers on the main thread are not slowed down.
 */
export class WalCheckpointer {
  private readonly worker: Worker;
  private exited = false;
  private closed?: Promise<void>;

  constructor(path: string, synchronous: string, intervalMs = 50) {
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { path, synchronous, intervalMs, module: require.resolve('better-sqlite3') },
    });
    // Never keeps the process alive; a failing thread leaves the backstop autocheckpoint.
    this.worker.unref();
    this.worker.on('error', () => undefined);
    this.worker.once('exit', () => (this.exited = true));
  }

  /** Runs a last checkpoint and ends the thread. Idempotent. */
  close(): Promise<void> {
    this.closed ??= new Promise<void>((resolve) => {
      if (this.exited) return resolve();
      this.worker.once('exit', () => resolve());
      this.worker.postMessage('close');
      // A thread that does not exit on its own in time is stopped.
      setTimeout(() => void this.worker.terminate(), 5000).unref();
    });
    return this.closed;
  }
}
