/**
 * The Redis server may evict keys under memory pressure, which would silently drop queued
 * messages. Raised at connect so the misconfiguration is found before any message is lost.
 */
export class RedisEvictionPolicyError extends Error {
  override readonly name = 'RedisEvictionPolicyError';
  constructor(readonly policy: string) {
    super(
      `redis maxmemory-policy is "${policy}"; the queue driver needs "noeviction" ` +
        '(set maxmemory-policy noeviction in redis.conf or with CONFIG SET)',
    );
  }
}
