import { ConfigError } from '../common/config-error';
import { hashKey } from './api-key';
import { buildKeySet } from './api-key.store';
import { list, parseKeyFile } from './key-record';

const hash = hashKey('tq_secret');

describe('API_KEYS_FILE', () => {
  it('reads a list of hashed keys, with defaults for tenant and actions', () => {
    const keys = parseKeyFile(
      {
        keys: [
          { name: 'ci', hash: `sha256:${hash}`, scopes: ['tasks:write'], actions: 'a,{b,c}' },
          { name: 'ops', hash: hashKey('x'), scopes: 'admin', tenant: 'acme' },
        ],
      },
      'keys.yaml',
    );
    expect(keys).toEqual([
      {
        name: 'ci',
        hash,
        tenant: 'default',
        scopes: ['tasks:write'],
        actions: ['a', '{b,c}'],
        source: 'file',
      },
      {
        name: 'ops',
        hash: hashKey('x'),
        tenant: 'acme',
        scopes: ['admin'],
        actions: ['*'],
        source: 'file',
      },
    ]);
  });

  it.each([
    [{ keys: {} }, /expected a list of keys/],
    [[{ name: 'ci', key: 'tq_secret', scopes: ['admin'] }], /plain key; store only its hash/],
    [[{ name: 'ci', hash: 'md5:abc', scopes: ['admin'] }], /hash must be sha256:<64 hex>/],
    [[{ name: 'ci', hash, scopes: ['root'] }], /scopes must be a non-empty list of tasks:write/],
    [[{ name: 'ci', hash, scopes: [] }], /scopes must be a non-empty list/],
    [[{ name: 'c:i', hash, scopes: ['admin'] }], /name must be a letter or digit/],
    [[{ name: 'ci', hash, scopes: ['admin'], tenant: 'a b' }], /tenant must be/],
    [[{ name: 'ci', hash, scopes: ['admin'], actions: 7 }], /actions must be a list/],
    [
      [
        { name: 'ci', hash, scopes: ['admin'] },
        { name: 'ci', hash: hashKey('y'), scopes: ['admin'] },
      ],
      /name ci is used twice/,
    ],
  ])('refuses %j, naming the problem', (parsed, message) => {
    expect(() => parseKeyFile(parsed, 'keys.yaml')).toThrow(ConfigError);
    expect(() => parseKeyFile(parsed, 'keys.yaml')).toThrow(message);
  });

  it('splits lists on commas outside braces', () => {
    expect(list('a, {b,c} ,d')).toEqual(['a', '{b,c}', 'd']);
    expect(list(['x', ' y '])).toEqual(['x', 'y']);
    expect(list(3)).toBeUndefined();
  });
});

describe('key set', () => {
  const records = parseKeyFile(
    [{ name: 'ci', hash, scopes: ['tasks:write'], actions: ['uppercase'], tenant: 'acme' }],
    'keys.yaml',
  );

  it('finds a key by its hash, and counts as configured', () => {
    const set = buildKeySet(records, false);
    expect(set.configured).toBe(true);
    expect(set.byHash.get(hash)).toMatchObject({ keyName: 'ci', tenant: 'acme' });
    expect(set.byName.get('ci')).toEqual({
      keyName: 'ci',
      tenant: 'acme',
      scopes: ['tasks:write'],
      actions: ['uppercase'],
    });
  });

  it('is configured without keys when a source exists (revoking every key never opens it)', () => {
    expect(buildKeySet([], true).configured).toBe(true);
    expect(buildKeySet([], false).configured).toBe(false);
  });

  it('refuses one name from two sources', () => {
    expect(() => buildKeySet([...records, { ...records[0], source: 'database' }], true)).toThrow(
      /both in API_KEYS_FILE and in api_keys/,
    );
  });
});
