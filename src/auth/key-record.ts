import { ConfigError } from '../common/config-error';
import { checkActionPattern } from './action-policy';
import { KEY_NAME_PATTERN, TENANT_PATTERN, parseHash } from './api-key';
import { DEFAULT_TENANT } from './actor';
import { SCOPES, isScope } from './scopes';

/** One API key as the key set holds it: its hash, never the key. */
export interface KeyRecord {
  name: string;
  /** SHA-256 of the key, lower-case hex. */
  hash: string;
  tenant: string;
  scopes: string[];
  actions: string[];
  source: 'file' | 'database';
}

/** The fields of a key, checked; throws ConfigError naming `where` and the bad field. */
export function checkKeyFields(
  fields: { name: unknown; tenant?: unknown; scopes: unknown; actions?: unknown },
  where: string,
): { name: string; tenant: string; scopes: string[]; actions: string[] } {
  const { name } = fields;
  if (typeof name !== 'string' || !KEY_NAME_PATTERN.test(name)) {
    throw new ConfigError(
      `${where}: name must be a letter or digit, then up to 63 letters, digits, _ . or -`,
    );
  }
  const tenant = fields.tenant ?? DEFAULT_TENANT;
  if (typeof tenant !== 'string' || !TENANT_PATTERN.test(tenant)) {
    throw new ConfigError(
      `${where} (${name}): tenant must be a letter or digit, then up to 63 letters, digits, _ . or -`,
    );
  }
  const scopes = list(fields.scopes);
  if (!scopes || scopes.length === 0 || !scopes.every(isScope)) {
    throw new ConfigError(
      `${where} (${name}): scopes must be a non-empty list of ${SCOPES.join(', ')}`,
    );
  }
  // No actions given: the key may submit every action its scopes allow.
  const actions = fields.actions === undefined ? ['*'] : list(fields.actions);
  if (!actions) throw new ConfigError(`${where} (${name}): actions must be a list of patterns`);
  for (const pattern of actions) {
    const problem = checkActionPattern(pattern);
    if (problem) throw new ConfigError(`${where} (${name}): actions: ${problem}`);
  }
  return { name, tenant, scopes: [...new Set(scopes)], actions };
}

/**
 * The keys of an API_KEYS_FILE (YAML or JSON, which YAML reads too): a list, or `{keys: [...]}`,
 * of `{name, hash: "sha256:<hex>", scopes, actions?, tenant?}`. Plain keys are refused: the
 * file holds hashes only (`npm run keys -- create --config-entry` prints an entry).
 */
export function parseKeyFile(parsed: unknown, file: string): KeyRecord[] {
  const entries: unknown =
    parsed && typeof parsed === 'object' && !Array.isArray(parsed)
      ? (parsed as { keys?: unknown }).keys
      : parsed;
  if (!Array.isArray(entries)) {
    throw new ConfigError(`API_KEYS_FILE ${file}: expected a list of keys, or {keys: [...]}`);
  }
  const names = new Set<string>();
  return entries.map((entry: unknown, index) => {
    const where = `API_KEYS_FILE ${file}: keys[${index}]`;
    if (!entry || typeof entry !== 'object') throw new ConfigError(`${where}: not an object`);
    const raw = entry as Record<string, unknown>;
    if ('key' in raw) {
      throw new ConfigError(`${where}: holds a plain key; store only its hash ("hash: sha256:…")`);
    }
    const fields = checkKeyFields(
      { name: raw.name, tenant: raw.tenant, scopes: raw.scopes, actions: raw.actions },
      where,
    );
    const hash = typeof raw.hash === 'string' ? parseHash(raw.hash) : undefined;
    if (!hash) throw new ConfigError(`${where} (${fields.name}): hash must be sha256:<64 hex>`);
    if (names.has(fields.name)) {
      throw new ConfigError(`${where}: name ${fields.name} is used twice`);
    }
    names.add(fields.name);
    return { ...fields, hash, source: 'file' as const };
  });
}

/**
 * `a,b` or `[a, b]` as trimmed strings; undefined for anything else. Commas inside braces stay
 * (`{uppercase,sum}` is one glob pattern).
 */
export function list(value: unknown): string[] | undefined {
  const items = typeof value === 'string' ? splitTopLevel(value) : value;
  if (!Array.isArray(items) || !items.every((item) => typeof item === 'string')) return undefined;
  return items.map((item) => item.trim()).filter((item) => item !== '');
}

function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '\\') i++;
    else if (ch === '{') depth++;
    else if (ch === '}') depth = Math.max(0, depth - 1);
    else if (ch === ',' && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts;
}
