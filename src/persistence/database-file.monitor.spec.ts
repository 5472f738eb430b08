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

  it('watches nothing for PostgreSQL', () => {
    const postgres = { options: { type: 'postgres' } } as unknown as DataSource;
    monitor = new DatabaseFileMonitor(
      postgres,
      loadConfig({ DATABASE_PATH: join(dir, 'none.db') }),
    );
    expect(monitor.problem()).toBeUndefined();
  });
});
