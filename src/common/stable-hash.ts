import { createHash } from 'node:crypto';

/**
 * SHA-256 of a JSON value with object keys sorted at every depth, so two values that differ only
 * in key order hash alike (an idempotent replay, a schedule declared again).
 */
export function stableHash(value: unknown): string {
  const canonical = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(canonical)
      : v && typeof v === 'object'
        ? Object.fromEntries(
            Object.keys(v)
              .sort()
              .map((key) => [key, canonical((v as Record<string, unknown>)[key])]),
          )
        : v;
  return createHash('sha256')
    .update(JSON.stringify(canonical(value)))
    .digest('hex');
}
