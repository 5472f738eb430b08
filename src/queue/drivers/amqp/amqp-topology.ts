import type { Options } from 'amqplib';

/**
 * Names and arguments of the RabbitMQ objects behind one taskq queue. Everything is published
 * through the default exchange straight to a queue name, so no exchange is declared.
 *
 * Queues are classic, not quorum: taskq needs priorities, which on RabbitMQ 3.x only classic
 * queues with `x-max-priority` give. On a cluster that needs replication more than priorities,
 * quorum queues would be the other choice; the driver would then lose priorities.
 */

/** AMQP priorities 0..MAX_PRIORITY; taskq priorities outside are clamped. */
export const MAX_PRIORITY = 10;

/**
 * Header names the driver wrote before its metadata moved into the body (amqp-envelope.ts);
 * read only for messages still queued by those versions.
 */
export const HEADER = {
  attempt: 'x-taskq-attempt',
  deliveries: 'x-taskq-deliveries',
  priority: 'x-taskq-priority',
  dedup: 'x-taskq-dedup',
  reason: 'x-taskq-reason',
  deadAt: 'x-taskq-dead-at',
} as const;

/** Headers RabbitMQ adds when a delay queue dead-letters a message back; not shown to handlers. */
export function isBrokerHeader(name: string): boolean {
  return (
    name.startsWith('x-taskq-') ||
    name === 'x-death' ||
    name.startsWith('x-first-death-') ||
    name.startsWith('x-last-death-')
  );
}

export function mainQueue(queue: string): { name: string; options: Options.AssertQueue } {
  return { name: queue, options: { durable: true, arguments: { 'x-max-priority': MAX_PRIORITY } } };
}

export function deadQueue(queue: string): { name: string; options: Options.AssertQueue } {
  return { name: `${queue}.dead`, options: { durable: true } };
}

/**
 * A delay queue holds messages for exactly `bucketMs`, then dead-letters them back to the main
 * queue. One TTL per queue means the head always expires first, so nothing waits behind a
 * longer delay. An unused delay queue deletes itself well after its last message left.
 */
export function delayQueue(
  queue: string,
  bucketMs: number,
): { name: string; options: Options.AssertQueue } {
  return {
    name: `${queue}.delay.${bucketMs}`,
    options: {
      durable: true,
      arguments: {
        'x-message-ttl': bucketMs,
        'x-dead-letter-exchange': '',
        'x-dead-letter-routing-key': queue,
        'x-expires': bucketMs * 2 + 60_000,
      },
    },
  };
}

const STEPS = [1, 1.5, 2, 3, 4, 5, 7];

/**
 * Rounds a delay up to the next of 1, 1.5, 2, 3, 4, 5, 7 × 10^k ms (at least 10 ms), so jittered
 * backoffs share a few delay queues. A message is never early and at most 1.5× late.
 */
export function delayBucket(delayMs: number): number {
  const ms = Math.max(10, Math.ceil(delayMs));
  let scale = 10 ** Math.floor(Math.log10(ms));
  for (;;) {
    for (const step of STEPS) {
      const bucket = Math.round(step * scale);
      if (bucket >= ms) return bucket;
    }
    scale *= 10;
  }
}
