import 'reflect-metadata';
import { Command, CommanderError } from 'commander';
import { DataSource } from 'typeorm';
import { stringify as toYaml } from 'yaml';
import { ConfigError, loadConfig } from '../config/app.config';
import { buildDataSourceOptions } from '../persistence/data-source.options';
import { runMigrationsLocked } from '../persistence/migration-lock';
import { generateKey, hashKey } from './api-key';
import { ApiKeyEntity } from './api-key.entity';
import { checkKeyFields } from './key-record';
import { SCOPES } from './scopes';

export interface KeysOutput {
  out(line: string): void;
  err(line: string): void;
}

const consoleOutput: KeysOutput = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
};

/**
 * `npm run keys -- create|list|revoke`: the api_keys table (the database of DATABASE_URL or
 * DATABASE_PATH, migrated first like the service). `create` prints the new key once, on stdout
 * alone, and stores only its SHA-256; `create --config-entry` stores nothing and prints the
 * entry for an API_KEYS_FILE instead. Answers the exit code.
 */
export async function runKeys(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
  io: KeysOutput = consoleOutput,
): Promise<number> {
  let dataSource: DataSource | undefined;
  const database = async (): Promise<DataSource> => {
    const config = loadConfig(env);
    dataSource = await new DataSource(buildDataSourceOptions(config)).initialize();
    if (config.migrationsRun) await runMigrationsLocked(dataSource);
    return dataSource;
  };
  const program = new Command('keys')
    .description('Manage taskq API keys (stored as SHA-256 hashes only)')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.out(s.trimEnd()),
      writeErr: (s) => io.err(s.trimEnd()),
    });
  program
    .command('create')
    .description('Create a key and print it once')
    .requiredOption('--name <name>', 'unique name (letters, digits, _ . -)')
    .requiredOption('--scopes <list>', `comma-separated: ${SCOPES.join(', ')}`)
    .option('--actions <list>', 'comma-separated glob patterns of actions it may submit', '*')
    .option('--tenant <tenant>', 'the tenant its tasks belong to', 'default')
    .option('--config-entry', 'store nothing: print the key and its API_KEYS_FILE entry')
    .action(async (options: Record<string, string | boolean | undefined>) => {
      const fields = checkKeyFields(
        {
          name: options.name,
          tenant: options.tenant,
          scopes: options.scopes,
          actions: options.actions,
        },
        'keys create',
      );
      const key = generateKey();
      const hash = hashKey(key);
      if (options.configEntry) {
        io.out(key);
        io.err('The key is shown once, above. Add this entry to the keys list of API_KEYS_FILE:');
        io.err(toYaml([{ ...fields, hash: `sha256:${hash}` }]).trimEnd());
        return;
      }
      const repository = (await database()).getRepository(ApiKeyEntity);
      if (await repository.findOneBy({ name: fields.name })) {
        throw new ConfigError(`keys create: a key named ${fields.name} exists (revoked or not)`);
      }
      await repository.insert({
        name: fields.name,
        keyHash: hash,
        tenant: fields.tenant,
        scopes: fields.scopes.join(','),
        actions: JSON.stringify(fields.actions),
        createdAt: Date.now(),
        revokedAt: null,
      });
      io.out(key);
      io.err(
        `Created key ${fields.name} (tenant ${fields.tenant}; scopes ${fields.scopes.join(', ')}; ` +
          `actions ${fields.actions.join(', ')}). It is shown once, above: only its hash is kept. ` +
          'Running services pick it up within API_KEYS_REFRESH_MS.',
      );
    });
  program
    .command('list')
    .description('List the keys (never the keys themselves)')
    .action(async () => {
      const rows = await (
        await database()
      )
        .getRepository(ApiKeyEntity)
        .find({ order: { name: 'ASC' } });
      for (const row of rows) {
        const actions = (JSON.parse(row.actions) as string[]).join(',');
        const state = row.revokedAt === null ? 'active' : `revoked ${iso(row.revokedAt)}`;
        io.out(
          `${row.name}\ttenant=${row.tenant}\tscopes=${row.scopes}\tactions=${actions}\t` +
            `created ${iso(row.createdAt)}\t${state}`,
        );
      }
      if (rows.length === 0) io.err('no keys in the api_keys table');
    });
  program
    .command('revoke')
    .description('Revoke a key: refused by the API and by the consumer within API_KEYS_REFRESH_MS')
    .argument('<name>')
    .action(async (name: string) => {
      const repository = (await database()).getRepository(ApiKeyEntity);
      const result = await repository
        .createQueryBuilder()
        .update()
        .set({ revokedAt: Date.now() })
        .where('name = :name AND revoked_at IS NULL', { name })
        .execute();
      if (result.affected !== 1) throw new ConfigError(`keys revoke: no active key named ${name}`);
      io.err(`Revoked key ${name}.`);
    });
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode;
    io.err(
      error instanceof ConfigError ? error.message : `keys: failed: ${(error as Error).stack}`,
    );
    return 1;
  } finally {
    await dataSource?.destroy().catch(() => undefined);
  }
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

if (require.main === module) {
  void runKeys(process.argv.slice(2)).then((code) => process.exit(code));
}
