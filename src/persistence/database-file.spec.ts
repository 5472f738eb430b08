import Database from 'better-sqlite3';
import { copyFileSync, mkdtempSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../config/app.config';
import {
  checkDatabaseFile,
  databaseFileSetting,
  fileIdentity,
  fileReplaced,
} from './database-file';

describe('database file', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'taskq-dbfile-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function database(name: string): string {
    const path = join(dir, name);
    const db = new Database(path);
    db.exec('CREATE TABLE t (x); INSERT INTO t VALUES (1)');
    db.close();
    return path;
  }

  it('names the setting that chose the file', () => {
    expect(databaseFileSetting(loadConfig({ DATABASE_PATH: '/srv/q.db' }))).toBe(
      '/srv/q.db (DATABASE_PATH)',
    );
    expect(databaseFileSetting(loadConfig({}))).toMatch(
      /\/data\/tasks\.db \(the default; set DATABASE_PATH to choose another file\)$/,
    );
  });

  it('tells a deleted or replaced file from the one opened', () => {
    const path = database('a.db');
    const opened = fileIdentity(path)!;
    expect(fileReplaced(path, opened)).toBeUndefined();
    copyFileSync(path, `${path}.new`);
    renameSync(`${path}.new`, path);
    expect(fileReplaced(path, opened)).toMatch(/was replaced by another file/);
    unlinkSync(path);
    expect(fileReplaced(path, opened)).toMatch(/was deleted/);
  });

  it('checks a sound file as ok and rejects a file that is not a database', async () => {
    await expect(checkDatabaseFile(database('ok.db'), 'quick')).resolves.toEqual({ ok: true });
    await expect(checkDatabaseFile(database('ok2.db'), 'full')).resolves.toEqual({ ok: true });
    const notes = join(dir, 'notes.db');
    writeFileSync(notes, 'not a database\n'.repeat(100));
    await expect(checkDatabaseFile(notes, 'quick')).rejects.toMatchObject({
      code: 'SQLITE_NOTADB',
    });
  });
});
