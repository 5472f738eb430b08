import { Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { readFile } from 'node:fs/promises';
import { DataSource } from 'typeorm';
import { parse as parseYaml } from 'yaml';
import type { AppConfig } from '../config/app.config';
import { InjectAppConfig } from '../config/inject-app-config.decorator';
import { actionAllowed } from './action-policy';
import { type Actor, SCHEDULE_ACTOR_PREFIX, type TaskActor } from './actor';
import { MAX_KEY_LENGTH, hashKey, sameHash } from './api-key';
import { ApiKeyEntity } from './api-key.entity';
import { type KeyRecord, checkKeyFields, parseKeyFile } from './key-record';

/** The keys in force at one moment, and whether any key is configured at all. */
export interface KeySet {
  /** By SHA-256 hex. */
  byHash: Map<string, Actor & { hash: string }>;
  byName: Map<string, Actor>;
  /** False only when there is no key file and the api_keys table never held a row: open mode. */
  configured: boolean;
}

/** The api_keys rows (revoked ones included) as key records and whether any row exists. */
export async function readKeyTable(
  dataSource: DataSource,
): Promise<{ keys: KeyRecord[]; rows: number }> {
  const rows = await dataSource.getRepository(ApiKeyEntity).find();
  const keys: KeyRecord[] = [];
  for (const row of rows) {
    if (row.revokedAt !== null) continue;
    const fields = checkKeyFields(
      {
        name: row.name,
        tenant: row.tenant,
        scopes: row.scopes,
        actions: JSON.parse(row.actions) as unknown,
      },
      'api_keys',
    );
    keys.push({ ...fields, hash: row.keyHash, source: 'database' });
  }
  return { keys, rows: rows.length };
}

/** Builds the lookup maps; a name in both sources is refused (which one would win is unclear). */
export function buildKeySet(records: KeyRecord[], configured: boolean): KeySet {
  const byHash = new Map<string, Actor & { hash: string }>();
  const byName = new Map<string, Actor>();
  for (const record of records) {
    if (byName.has(record.name)) {
      throw new Error(`API key name ${record.name} is both in API_KEYS_FILE and in api_keys`);
    }
    const actor = {
      keyName: record.name,
      tenant: record.tenant,
      scopes: record.scopes,
      actions: record.actions,
    };
    byName.set(record.name, actor);
    byHash.set(record.hash, { ...actor, hash: record.hash });
  }
  return { byHash, byName, configured: configured || records.length > 0 };
}

/**
 * The API keys in force: API_KEYS_FILE and the api_keys table, read at start-up and again every
 * API_KEYS_REFRESH_MS, so a key created or revoked by `npm run keys` (in another process) takes
 * hold within that time in every process, the workers' consumer check included. A read that
 * fails keeps the last good set (a broken file at start-up stops the start instead).
 *
 * Keys are never held or logged in plain text: lookups go by SHA-256.
 */
@Injectable()
export class ApiKeyStore implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('Auth');
  private keys: KeySet = { byHash: new Map(), byName: new Map(), configured: false };
  private timer?: NodeJS.Timeout;
  private reloading?: Promise<void>;

  constructor(
    private readonly dataSource: DataSource,
    @InjectAppConfig() private readonly config: AppConfig,
  ) {}

  async onModuleInit(): Promise<void> {
    this.keys = await this.read();
    if (this.keys.configured) {
      this.logger.log(`API keys required: ${this.keys.byName.size} key(s) in force`);
    } else {
      this.warnOpen();
    }
    this.timer = setInterval(() => void this.reload(), this.config.auth.refreshMs).unref();
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
  }

  /** `open`: no key configured, every route is anonymous. `keys`: a key is required. */
  get mode(): 'open' | 'keys' {
    return this.keys.configured ? 'keys' : 'open';
  }

  /** The actor of a presented key, or undefined when no key in force has its hash. */
  authenticate(presented: string): Actor | undefined {
    if (presented.length > MAX_KEY_LENGTH) return undefined;
    const hash = hashKey(presented);
    // The map is keyed by the hash, so its lookup's timing tells nothing usable about the key;
    // the final comparison is constant-time all the same.
    const found = this.keys.byHash.get(hash);
    if (!found || !sameHash(found.hash, hash)) return undefined;
    return this.keys.byName.get(found.keyName);
  }

  /**
   * Why the consumer must not run a task of `action` for `owner`, or undefined when it may.
   * Open mode runs everything; with keys, the task's key must still be in force, of the task's
   * tenant, and allowed the action. The scheduler's tasks (`schedule:<name>`) come from
   * schedules, which only an admin key can make.
   */
  refusal(owner: TaskActor, action: string): string | undefined {
    if (!this.keys.configured) return undefined;
    const { keyName, tenant } = owner;
    if (keyName === null) return 'refused: the task has no actor (API keys are required)';
    if (keyName.startsWith(SCHEDULE_ACTOR_PREFIX)) return undefined;
    const key = this.keys.byName.get(keyName);
    if (!key) return `refused: API key "${keyName}" is revoked or unknown`;
    if (key.tenant !== tenant) {
      return `refused: API key "${keyName}" does not belong to tenant "${tenant}"`;
    }
    if (!actionAllowed(key.actions, action)) {
      return `refused: API key "${keyName}" may not submit action "${action}"`;
    }
    return undefined;
  }

  /** Reads the key set again now (also what the timer does). */
  reload(): Promise<void> {
    this.reloading ??= this.read()
      .then((keys) => {
        if (keys.configured && !this.keys.configured) {
          this.logger.log('API keys configured: a key is now required');
        }
        this.keys = keys;
      })
      .catch((error: unknown) =>
        this.logger.error(
          `API keys not reloaded (the last set stays): ${(error as Error).message}`,
        ),
      )
      .finally(() => (this.reloading = undefined));
    return this.reloading;
  }

  private async read(): Promise<KeySet> {
    const fromFile = this.config.auth.keysFile
      ? await this.readFile(this.config.auth.keysFile)
      : [];
    const table = await readKeyTable(this.dataSource);
    return buildKeySet(
      [...fromFile, ...table.keys],
      this.config.auth.keysFile !== undefined || table.rows > 0,
    );
  }

  private async readFile(file: string): Promise<KeyRecord[]> {
    return parseKeyFile(parseYaml(await readFile(file, 'utf8')) as unknown, file);
  }

  private warnOpen(): void {
    const line = '*'.repeat(78);
    this.logger.warn(
      [
        line,
        'AUTH IS OPEN: no API key is configured, so every route is anonymous. Anyone who',
        'reaches this port can read, create, cancel and retry every task and pause queues.',
        'Create a key (npm run keys -- create ...) or set API_KEYS_FILE; see README "Security".',
        line,
      ].join('\n'),
    );
  }
}
