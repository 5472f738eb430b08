import { Logger } from '@nestjs/common';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { loadConfig } from '../config/app.config';
import { buildDataSourceOptions } from '../persistence/data-source.options';
import { hashKey } from './api-key';
import { ApiKeyStore } from './api-key.store';
import { type KeysOutput, runKeys } from './keys.cli';

/** The key store on a real SQLite file, with `npm run keys` writing the same file. */
describe(ApiKeyStore.name, () => {
  let dir: string;
  let env: Record<string, string>;
  let dataSource: DataSource;
  const stores: ApiKeyStore[] = [];

  async function keys(...argv: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
    const out: string[] = [];
    const err: string[] = [];
    const io: KeysOutput = { out: (l) => out.push(l), err: (l) => err.push(l) };
    return { code: await runKeys(argv, env, io), out, err };
  }

  async function store(extra: Record<string, string> = {}): Promise<ApiKeyStore> {
    const created = new ApiKeyStore(dataSource, loadConfig({ ...env, ...extra }));
    stores.push(created);
    await created.onModuleInit();
    return created;
  }

  // The store's warnings (open mode, a bad file) are expected here.
  beforeAll(() => Logger.overrideLogger(false));
  afterAll(() => Logger.overrideLogger(['log', 'error', 'warn', 'debug', 'verbose', 'fatal']));

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'taskq-keys-'));
    env = { DATABASE_PATH: join(dir, 'tasks.db') };
    dataSource = await new DataSource(buildDataSourceOptions(loadConfig(env))).initialize();
    await dataSource.runMigrations();
  });

  afterEach(async () => {
    for (const s of stores.splice(0)) s.onApplicationShutdown();
    await dataSource.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('is open with no key file and an empty api_keys table', async () => {
    const open = await store();
    expect(open.mode).toBe('open');
    expect(open.authenticate('tq_anything')).toBeUndefined();
    expect(open.refusal({ keyName: null, tenant: 'default' }, 'x')).toBeUndefined();
  });

  it('authenticates a created key by its hash; the table holds only the hash', async () => {
    const created = await keys(
      'create',
      '--name',
      'ci',
      '--scopes',
      'tasks:write,tasks:read',
      '--actions',
      'uppercase,{sum,avg}',
      '--tenant',
      'acme',
    );
    expect(created.code).toBe(0);
    const [key] = created.out;
    expect(key).toMatch(/^tq_/);
    const rows = await dataSource.query<Record<string, unknown>[]>('SELECT * FROM api_keys');
    expect(JSON.stringify(rows)).not.toContain(key);
    expect(rows[0].key_hash).toBe(hashKey(key));

    const s = await store();
    expect(s.mode).toBe('keys');
    expect(s.authenticate(key)).toEqual({
      keyName: 'ci',
      tenant: 'acme',
      scopes: ['tasks:write', 'tasks:read'],
      actions: ['uppercase', '{sum,avg}'],
    });
    expect(s.authenticate(`${key}x`)).toBeUndefined();
    expect(s.authenticate('x'.repeat(10_000))).toBeUndefined();

    const listed = await keys('list');
    expect(listed.out.join('\n')).toContain('ci\ttenant=acme');
    expect(listed.out.join('\n')).not.toContain(hashKey(key));
  });

  it('refuses, for the consumer, tasks without an allowed actor', async () => {
    await keys(
      'create',
      '--name',
      'ci',
      '--scopes',
      'tasks:write',
      '--actions',
      'sum',
      '--tenant',
      'acme',
    );
    const s = await store();
    expect(s.refusal({ keyName: 'ci', tenant: 'acme' }, 'sum')).toBeUndefined();
    expect(s.refusal({ keyName: null, tenant: 'default' }, 'sum')).toMatch(/has no actor/);
    expect(s.refusal({ keyName: 'ci', tenant: 'acme' }, 'rm')).toMatch(
      /API key "ci" may not submit action "rm"/,
    );
    expect(s.refusal({ keyName: 'ci', tenant: 'other' }, 'sum')).toMatch(
      /does not belong to tenant "other"/,
    );
    expect(s.refusal({ keyName: 'ghost', tenant: 'acme' }, 'sum')).toMatch(/revoked or unknown/);
    expect(s.refusal({ keyName: 'schedule:nightly', tenant: 'default' }, 'sum')).toBeUndefined();
  });

  it('sees a revoke on its next reload, and stays keyed with every key revoked', async () => {
    const [key] = (await keys('create', '--name', 'ci', '--scopes', 'admin')).out;
    const s = await store();
    expect(s.authenticate(key)?.keyName).toBe('ci');
    expect((await keys('revoke', 'ci')).code).toBe(0);
    await s.reload();
    expect(s.authenticate(key)).toBeUndefined();
    expect(s.mode).toBe('keys');
    expect(s.refusal({ keyName: 'ci', tenant: 'default' }, 'x')).toMatch(/revoked or unknown/);
    expect((await keys('revoke', 'ci')).code).toBe(1);
  });

  it('reads API_KEYS_FILE (YAML), and keeps the last good set when it breaks', async () => {
    const file = join(dir, 'keys.yaml');
    writeFileSync(
      file,
      `keys:\n  - name: ops\n    hash: sha256:${hashKey('tq_ops')}\n    scopes: [admin]\n`,
    );
    const s = await store({ API_KEYS_FILE: file });
    expect(s.mode).toBe('keys');
    expect(s.authenticate('tq_ops')?.keyName).toBe('ops');
    writeFileSync(file, 'keys:\n  - name: ops\n    key: tq_ops\n    scopes: [admin]\n');
    await s.reload();
    expect(s.authenticate('tq_ops')?.keyName).toBe('ops');
  });

  it('will not start on a key file that holds a plain key', async () => {
    const file = join(dir, 'keys.json');
    writeFileSync(file, JSON.stringify([{ name: 'ops', key: 'tq_ops', scopes: ['admin'] }]));
    await expect(store({ API_KEYS_FILE: file })).rejects.toThrow(/holds a plain key/);
  });

  it('refuses a bad create, naming the field, and a taken name', async () => {
    const bad = await keys('create', '--name', 'ci', '--scopes', 'tasks:write,root');
    expect(bad.code).toBe(1);
    expect(bad.err.join('\n')).toMatch(/scopes must be a non-empty list/);
    expect((await keys('create', '--name', 'ci', '--scopes', 'admin')).code).toBe(0);
    const taken = await keys('create', '--name', 'ci', '--scopes', 'admin');
    expect(taken.code).toBe(1);
    expect(taken.err.join('\n')).toMatch(/a key named ci exists/);
  });
});
