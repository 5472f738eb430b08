/** The parts of a sqlite delivery receipt: where the row is and which lease proves it ours. */
export interface SqliteReceipt {
  shard: number;
  seq: number;
  token: string;
}

export function encodeReceipt({ shard, seq, token }: SqliteReceipt): string {
  return `${shard}:${seq}:${token}`;
}

/** Undefined for anything this driver did not issue; such a receipt is stale by definition. */
export function decodeReceipt(receipt: string): SqliteReceipt | undefined {
  const match = /^(\d+):(\d+):(.+)$/.exec(receipt);
  if (!match) return undefined;
  return { shard: Number(match[1]), seq: Number(match[2]), token: match[3] };
}

/**
 * FNV-1a: a stable hash, so a deduplication key always lands on the same shard (and its
 * uniqueness check sees every live message with that key), in every process and after restarts.
 */
export function shardOf(key: string, shards: number): number {
  if (shards === 1) return 0;
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    hash ^= key.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % shards;
}
