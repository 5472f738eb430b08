import 'reflect-metadata';
import { DataSource } from 'typeorm';
import { ConfigError, loadConfig } from '../config/app.config';
import { buildDataSourceOptions, describeDatabase } from './data-source.options';
import { runMigrationsLocked } from './migration-lock';

/**
 * Standalone migration command: runs pending migrations and exits 0, or prints why and exits 1.
 * The tutorial's "process that runs once and exits". Takes the same lock as a starting service,
 * so it is safe to run while services start.
 */
export async function migrate(env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let dataSource: DataSource | undefined;
  try {
    const config = loadConfig(env);
    const where = describeDatabase(config);
    dataSource = await new DataSource(buildDataSourceOptions(config)).initialize();
    const applied = await runMigrationsLocked(dataSource);
    console.log(
      applied.length === 0
        ? `migrate: ${where} is up to date`
        : `migrate: applied ${applied.map((m) => m.name).join(', ')} to ${where}`,
    );
    return 0;
  } catch (error) {
    const message = error instanceof ConfigError ? error.message : (error as Error).stack;
    console.error(`migrate: failed: ${message}`);
    return 1;
  } finally {
    await dataSource?.destroy().catch(() => undefined);
  }
}

if (require.main === module) {
  void migrate().then((code) => process.exit(code));
}
