import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** Prefix of the keys taskq makes, so a leaked one is easy to recognise (and to scan for). */
export const KEY_PREFIX = 'tq_';
/** Longer presented keys are refused before hashing: no key of ours is near this long. */
export const MAX_KEY_LENGTH = 256;
/** Key names: no colon (reserved for `schedule:<name>` actors), no spaces. */
export const KEY_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
export const TENANT_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** A new key: 256 random bits, base64url. Shown once; only its hash is kept. */
export function generateKey(): string {
  return KEY_PREFIX + randomBytes(32).toString('base64url');
}

/**
 * SHA-256 of the key, hex. A plain (fast) hash is enough because the keys are 256 random bits:
 * nobody can search that space, so the slow, salted hashes that passwords need add nothing but
 * cost to every request. The database or a key file that leaks gives no usable key.
 */
export function hashKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/** `sha256:<hex>` or `<hex>` (64 hex digits) as the bare lower-case hex, else undefined. */
export function parseHash(value: string): string | undefined {
  const hex = value.startsWith('sha256:') ? value.slice(7) : value;
  return /^[0-9a-fA-F]{64}$/.test(hex) ? hex.toLowerCase() : undefined;
}

/** Constant-time equality of two hex digests of the same length. */
export function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * The key a request presents: `Authorization: Bearer <key>` or `X-API-Key: <key>`. Undefined
 * when it presents none.
 */
export function presentedKey(headers: Record<string, unknown>): string | undefined {
  const authorization = headers['authorization'];
  if (typeof authorization === 'string') {
    const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization);
    if (match) return match[1];
  }
  const apiKey = headers['x-api-key'];
  if (typeof apiKey === 'string' && apiKey.trim() !== '') return apiKey.trim();
  return undefined;
}
