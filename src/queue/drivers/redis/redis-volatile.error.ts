/**
 * The Redis server would lose accepted messages on a crash or restart: it keeps no append-only
 * file, or syncs it less often than the driver was told to require. Raised at connect, before
 * any message is trusted to it, unless the operator accepted the loss (REDIS_ALLOW_VOLATILE).
 */
export class RedisVolatileError extends Error {
  override readonly name = 'RedisVolatileError';
  constructor(readonly problem: string) {
    super(
      `redis ${problem}, so a crash or restart of the Redis server loses what it holds: every ` +
        'waiting, delayed and in-flight message, the dead letters and the pause state. taskq ' +
        'republishes queued tasks from its task table when it notices, but dead letters are ' +
        'gone. Set appendonly yes with appendfsync everysec (or always) on the server, or ' +
        'REDIS_ALLOW_VOLATILE=true to accept the loss',
    );
  }
}

/** appendfsync policies, weakest first. */
export const APPENDFSYNC_POLICIES = ['no', 'everysec', 'always'] as const;
export type AppendFsync = (typeof APPENDFSYNC_POLICIES)[number];

/**
 * What the server's persistence settings lose, or undefined when they meet `required`.
 * `appendfsync` is undefined where the server does not say (CONFIG disabled).
 */
export function volatility(
  settings: { aof: boolean; appendfsync?: string },
  required: AppendFsync,
): string | undefined {
  if (!settings.aof) return 'runs without an append-only file (appendonly no)';
  const policy = settings.appendfsync;
  if (policy === undefined) return undefined;
  const rank = APPENDFSYNC_POLICIES.indexOf(policy as AppendFsync);
  if (rank < APPENDFSYNC_POLICIES.indexOf(required)) {
    return `syncs its append-only file with appendfsync ${policy}, weaker than the required ${required}`;
  }
  return undefined;
}
