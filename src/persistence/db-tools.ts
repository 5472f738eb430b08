import 'reflect-metadata';
import {
  closeSync,
  existsSync,
  fsyncSync,
  openSync,
  renameSync,
  statSync,
  unlinkSync,
} from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { ConfigError, loadConfig } from '../config/app.config';
import { checkDatabaseFile, databaseFileSetting } from './database-file';

/** `db:check` has no time bound: an operator asked for the whole check. */
const CHECK_ON_DEMAND_TIMEOUT_MS = 86_400_000;

type Print = (line: string) => void;

/**
 * `npm run db:check`: SQLite's integrity_check on the task database (DATABASE_PATH), safe while
 * the service runs (it only reads). Exits 0 when the file is sound, 1 otherwise.
 */
export async function dbCheck(
  env: NodeJS.ProcessEnv = process.env,
  out: Print = console.log,
  err: Print = console.error,
): Promise<number> {
  const config = loadConfig(env);
  if (config.databaseUrl) {
    err(
      'db:check: DATABASE_URL is set: PostgreSQL checks its own pages (see amcheck); nothing to do',
    );
    return 1;
  }
  const where = databaseFileSetting(config);
  if (!existsSync(config.databasePath)) {
    err(`db:check: database ${where} does not exist`);
    return 1;
  }
  const started = Date.now();
  const result = await checkDatabaseFile(
    config.databasePath,
    'full',
    CHECK_ON_DEMAND_TIMEOUT_MS,
  ).catch((error: Error) => ({ ok: false as const, problems: [error.message] }));
  if (result.ok) {
    out(`db:check: ${where}: integrity_check ok in ${Date.now() - started} ms`);
    return 0;
  }
  const problems = 'problems' in result ? result.problems : ['did not finish'];
  err(`db:check: ${where}: integrity_check failed:\n  ${problems.join('\n  ')}`);
  return 1;
}

/**
 * `npm run db:backup -- FILE`: an online, consistent copy of the task database into FILE while
 * the service runs. `VACUUM INTO` reads one snapshot in a single read transaction (WAL: writers
 * go on meanwhile) and writes a compact copy; the copy is written beside FILE, checked, synced
 * and only then renamed to FILE, so FILE is either a whole backup or absent.
 */
export async function dbBackup(
  target: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
  out: Print = console.log,
  err: Print = console.error,
): Promise<number> {
  if (!target) {
    err('db:backup: usage: npm run db:backup -- FILE');
    return 1;
  }
  const config = loadConfig(env);
  if (config.databaseUrl) {
    err(
      'db:backup: DATABASE_URL is set: back PostgreSQL up with pg_dump (README: Running it in production)',
    );
    return 1;
  }
  const where = databaseFileSetting(config);
  const file = resolve(target);
  if (existsSync(file)) {
    err(`db:backup: ${file} exists; give a new file name (a backup never overwrites one)`);
    return 1;
  }
  if (!existsSync(config.databasePath)) {
    err(`db:backup: database ${where} does not exist`);
    return 1;
  }
  const partial = `${file}.partial`;
  if (existsSync(partial)) unlinkSync(partial);
  const started = Date.now();
  const source = new Database(config.databasePath, { fileMustExist: true });
  try {
    source.pragma('busy_timeout = 5000');
    source.prepare('VACUUM INTO ?').run(partial);
  } catch (error) {
    if (existsSync(partial)) unlinkSync(partial);
    err(`db:backup: copying database ${where} failed: ${(error as Error).message}`);
    return 1;
  } finally {
    source.close();
  }
  const check = await checkDatabaseFile(partial, 'quick').catch((error: Error) => ({
    ok: false as const,
    problems: [error.message],
  }));
  if (check.ok !== true) {
    unlinkSync(partial);
    err(`db:backup: the copy failed its quick_check; nothing written to ${file}`);
    return 1;
  }
  const copy = new Database(partial, { readonly: true });
  const tasks = (copy.prepare('SELECT count(*) AS n FROM tasks').get() as { n: number }).n;
  copy.close();
  syncFile(partial);
  renameSync(partial, file);
  syncFile(dirname(file));
  const mib = (statSync(file).size / 1048576).toFixed(1);
  out(`db:backup: ${where} -> ${file}: ${tasks} tasks, ${mib} MiB, in ${Date.now() - started} ms`);
  return 0;
}

function syncFile(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

async function main(argv: string[]): Promise<number> {
  const [command, file] = argv;
  try {
    if (command === 'check') return await dbCheck();
    if (command === 'backup') return await dbBackup(file);
    console.error('usage: db-tools check | db-tools backup FILE');
    return 1;
  } catch (error) {
    console.error(
      `db:${command}: ${error instanceof ConfigError ? error.message : (error as Error).stack}`,
    );
    return 1;
  }
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => process.exit(code));
}
