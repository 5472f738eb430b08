import { KEY_PREFIX, generateKey, hashKey, parseHash, presentedKey, sameHash } from './api-key';

describe('API keys', () => {
  it('makes keys of 256 random bits, each different', () => {
    const keys = new Set(Array.from({ length: 100 }, () => generateKey()));
    expect(keys.size).toBe(100);
    for (const key of keys) expect(key).toMatch(/^tq_[A-Za-z0-9_-]{43}$/);
    expect([...keys][0].startsWith(KEY_PREFIX)).toBe(true);
  });

  it('hashes a key with SHA-256 to 64 hex digits that do not contain it', () => {
    const key = generateKey();
    const hash = hashKey(key);
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    expect(hash).toBe(hashKey(key));
    expect(hash).not.toBe(hashKey(`${key}x`));
    // SHA-256 of "abc" (FIPS 180-2 test vector): the hash is plain SHA-256 of the text.
    expect(hashKey('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });

  it('reads a stored hash with or without the sha256: prefix, and nothing else', () => {
    const hex = hashKey('k');
    expect(parseHash(`sha256:${hex}`)).toBe(hex);
    expect(parseHash(hex.toUpperCase())).toBe(hex);
    expect(parseHash('sha256:abc')).toBeUndefined();
    expect(parseHash(generateKey())).toBeUndefined();
  });

  it('compares hashes in constant time, refusing other lengths', () => {
    const a = hashKey('a');
    expect(sameHash(a, a)).toBe(true);
    expect(sameHash(a, hashKey('b'))).toBe(false);
    expect(sameHash(a, a.slice(0, 62))).toBe(false);
  });

  it('takes the key from Authorization: Bearer or X-API-Key', () => {
    expect(presentedKey({ authorization: 'Bearer tq_abc' })).toBe('tq_abc');
    expect(presentedKey({ authorization: 'bearer   tq_abc ' })).toBe('tq_abc');
    expect(presentedKey({ 'x-api-key': ' tq_xyz ' })).toBe('tq_xyz');
    expect(presentedKey({ authorization: 'Bearer tq_a', 'x-api-key': 'tq_b' })).toBe('tq_a');
    expect(presentedKey({ authorization: 'Basic dXNlcjpwYXNz' })).toBeUndefined();
    expect(presentedKey({ authorization: 'Bearer a b' })).toBeUndefined();
    expect(presentedKey({ 'x-api-key': '' })).toBeUndefined();
    expect(presentedKey({})).toBeUndefined();
  });
});
