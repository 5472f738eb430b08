/**
 * What a Redis delivery's receipt proves: which stream entry, held by which consumer, after how
 * many stream deliveries. A settle goes through only while the entry's pending record still
 * matches, so a delivery whose lease was taken over by another consumer is refused.
 */
export interface RedisReceipt {
  level: string;
  entryId: string;
  consumer: string;
  count: number;
}

export function encodeReceipt(r: RedisReceipt): string {
  return `${r.level}|${r.entryId}|${r.count}|${r.consumer}`;
}

/** Undefined for a receipt this driver did not write. */
export function decodeReceipt(receipt: string): RedisReceipt | undefined {
  const match = /^(-?\d+)\|(\d+-\d+)\|(\d+)\|(.+)$/.exec(receipt);
  if (!match) return undefined;
  return { level: match[1], entryId: match[2], count: Number(match[3]), consumer: match[4] };
}
