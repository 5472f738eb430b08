import { randomBytes } from 'node:crypto';
import { Client } from 'pg';

/** Where `--db postgres` scenarios keep their tasks, unless DATABASE_URL says otherwise. */
export const BENCH_DATABASE_URL =
  process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

async function withClient<T>(work: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: BENCH_DATABASE_URL });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/**
 * A fresh schema for one scenario, as the e2e helper makes them: its URL carries
 * `options=-c search_path=<schema>`, so the service's migrations and tables land in it.
 */
export async function createBenchSchema(): Promise<{ url: string; drop(): Promise<void> }> {
  // Generated here (hex), never input: safe as an identifier.
  const schema = `bench_${process.pid}_${randomBytes(4).toString('hex')}`;
  await withClient((client) => client.query(`CREATE SCHEMA ${schema}`));
  const url = new URL(BENCH_DATABASE_URL);
  url.searchParams.set('options', `-c search_path=${schema}`);
  return {
    url: url.toString(),
    drop: async () => {
      await withClient((client) => client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`));
    },
  };
}
