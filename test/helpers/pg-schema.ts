import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { DataSource } from 'typeorm';
import { migrations } from '../../src/persistence/migrations';
import { TaskEntity } from '../../src/persistence/task.entity';

/** A schema of its own in a test database; `drop()` removes it with all it holds (idempotent). */
export interface PgSchema {
  schema: string;
  /** The database's URL with `options=-c search_path=<schema>`: its connections work in it. */
  url: string;
  drop(): Promise<void>;
}

/** A fresh schema with the service's migrations applied, and a DataSource working in it. */
export interface MigratedPgSchema extends PgSchema {
  dataSource: DataSource;
  /** Destroys the DataSource, then drops the schema, even when destroying fails. */
  drop(): Promise<void>;
}

/** Runs `work` with a client of its own on `url`'s database (no URL: libpq's PG* variables). */
export async function withPg<T>(
  work: (client: Client) => Promise<T>,
  url: string | undefined,
): Promise<T> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/**
 * Creates a uniquely named schema `<prefix>_<hex>` in `databaseUrl`'s database. A suite calls
 * it in `beforeAll` and `drop()` in `afterAll`, which Jest runs whether the tests passed or not.
 */
export async function freshPgSchema(prefix: string, databaseUrl: string): Promise<PgSchema> {
  // The name goes into SQL unquoted: only a plain prefix and generated hex may make it up.
  if (!/^[a-z][a-z0-9_]*$/.test(prefix)) throw new Error(`unsafe schema prefix: ${prefix}`);
  const schema = `${prefix}_${randomBytes(6).toString('hex')}`;
  await withPg((client) => client.query(`CREATE SCHEMA ${schema}`), databaseUrl);
  const url = new URL(databaseUrl);
  url.searchParams.set('options', `-c search_path=${schema}`);
  return {
    schema,
    url: url.toString(),
    drop: async () => {
      await withPg(
        (client) => client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`),
        databaseUrl,
      );
    },
  };
}

/**
 * A fresh schema migrated as the service migrates at start-up (each migration in its own
 * transaction), with a DataSource on it that knows the task entity. When the DataSource or the
 * migrations fail, the schema is dropped before the error is thrown: nothing is left behind.
 */
export async function migratedPgSchema(
  prefix: string,
  databaseUrl: string,
  // `extra` is handed to the pg pool (e.g. its size).
  options: { extra?: Record<string, unknown> } = {},
): Promise<MigratedPgSchema> {
  const created = await freshPgSchema(prefix, databaseUrl);
  const dataSource = new DataSource({
    type: 'postgres',
    url: created.url,
    entities: [TaskEntity],
    migrations,
    ...options,
  });
  const drop = async () => {
    try {
      if (dataSource.isInitialized) await dataSource.destroy();
    } finally {
      await created.drop();
    }
  };
  try {
    await dataSource.initialize();
    await dataSource.runMigrations({ transaction: 'each' });
  } catch (error) {
    await drop().catch(() => undefined);
    throw error;
  }
  return { ...created, dataSource, drop };
}
