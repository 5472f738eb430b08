import Database from 'better-sqlite3';
import type { ExecutionContext } from '@nestjs/common';
import { mkdtempSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DataSource } from 'typeorm';
import { DatabaseUnavailableError } from '../common/storage-errors';
import { loadConfig } from '../config/app.config';
import { DatabaseFileGuard, DatabaseFileMonitor } from './database-file.monitor';

function request(method: string): ExecutionContext {
  return {
    getType: () => 'http',
    switchToHttp: () => ({ getRequest: () => ({ method }) }),
  } as unknown as ExecutionContext;
}

describe(DatabaseFileMonitor.name, () => {
  let dir: string;
  let monitor: DatabaseFileMonitor | undefined;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'taskq-monitor-'))));
  afterEach(() => {
    monitor?.onModuleDestroy();
    rmSync(dir, { recursive: true, force: true });
  });

  const sqlite = { options: { type: 'better-sqlite3' }, driver: {} } as unknown as DataSource;

  it('reports a deleted file from then on, and the guard refuses writes but not reads', () => {
    const path = join(dir, 'tasks.db');
    new Database(path).close();
    monitor = new DatabaseFileMonitor(sqlite, loadConfig({ DATABASE_PATH: path }));
    const guard = new DatabaseFileGuard(monitor);
    expect(monitor.problem()).toBeUndefined();
    expect(guard.canActivate(request('POST'))).toBe(true);

    unlinkSync(path);
    expect(monitor.problem()).toMatch(/was deleted/);
    // The verdict stays: a new file at the path is still not the one the process holds.
    new Database(path).close();
    expect(monitor.problem()).toMatch(/was deleted/);
    expect(() => guard.canActivate(request('POST'))).toThrow(DatabaseUnavailableError);
    expect(() => guard.canActivate(request('DELETE'))).toThrow(DatabaseUnavailableError);
    expect(guard.canActivate(request('GET'))).toBe(true);
  });

  it('keeps its low-space autocheckpoint when the checkpoint thread raises the normal one', () => {
    // The bug: TaskFileCheckpoint, built after the monitor, set 20,000 pages over the low-space
    // 64, so on a nearly full disk the WAL grew until it could not be checkpointed at all.
    const path = join(dir, 'tasks.db');
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    const source = {
      options: { type: 'better-sqlite3' },
      driver: { databaseConnection: db },
    } as unknown as DataSource;
    const pages = () => db.pragma('wal_autocheckpoint', { simple: true });
    try {
      monitor = new DatabaseFileMonitor(source, loadConfig({ DATABASE_PATH: path }));
      // What a tick does when free space falls below LOW_SPACE_BYTES, and when it is back.
      const setLowSpace = (low: boolean) =>
        (monitor as unknown as { setLowSpace(low: boolean): void }).setLowSpace(low);
      setLowSpace(true);
      expect(pages()).toBe(64);
      monitor.useAutocheckpoint(20_000);
      expect(pages()).toBe(64);
      setLowSpace(false);
      expect(pages()).toBe(20_000);
    } finally {
      monitor?.onModuleDestroy();
      monitor = undefined;
      db.close();
    }
  });

  it('watches nothing for PostgreSQL', () => {
    const postgres = { options: { type: 'postgres' } } as unknown as DataSource;
    monitor = new DatabaseFileMonitor(
      postgres,
      loadConfig({ DATABASE_PATH: join(dir, 'none.db') }),
    );
    expect(monitor.problem()).toBeUndefined();
  });
});
