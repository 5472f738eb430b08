import type { Message } from 'amqplib';
import { HEADER, isBrokerHeader } from './amqp-topology';

/**
 * Content type of a message whose driver metadata rides in its JSON body. An AMQP headers table
 * costs RabbitMQ and amqplib an encode and a decode per message (measured: a third of the
 * throughput of a bare publish/consume loop with three small headers); a few more bytes of JSON
 * cost next to nothing, and the body is parsed anyway.
 */
export const ENVELOPE_TYPE = 'application/vnd.taskq.v1+json';

/** What the driver keeps with every message. Short keys: they are in every message. */
export interface Envelope {
  /** Message id, stable across redeliveries, retries and dead-lettering. */
  i: string;
  /** Attempt (1-based). */
  a: number;
  /** Deliveries of earlier copies of this message (a nack republishes a copy). */
  c: number;
  /** taskq priority as published; the AMQP priority property holds it clamped to 0..10. */
  p: number;
  /** Deduplication key. */
  k?: string;
  /** The publisher's headers. */
  h?: Record<string, string>;
  /** Dead letters: reason and time (ms since the epoch). */
  r?: string;
  t?: number;
  b: unknown;
}

export function encodeEnvelope(envelope: Envelope): Buffer {
  return Buffer.from(JSON.stringify(envelope));
}

/**
 * Reads a message of either format: the envelope, or the x-taskq-* headers and bare JSON body
 * of earlier driver versions (still in queues, delay queues and dead letters after an upgrade).
 * Throws on a body that is not JSON.
 */
export function decodeMessage(message: Message): Envelope {
  // (Throws, too, on a message no taskq driver wrote: its envelope or message id missing.)
  const text = message.content.toString('utf8');
  if (message.properties.contentType === ENVELOPE_TYPE) {
    const envelope = JSON.parse(text) as Partial<Envelope> | null;
    if (
      !envelope ||
      typeof envelope.i !== 'string' ||
      !Number.isInteger(envelope.a) ||
      !('b' in envelope)
    ) {
      throw new Error('not an envelope of this driver (fields i, a and b expected)');
    }
    return envelope as Envelope;
  }
  if (message.properties.messageId === undefined) {
    // Earlier versions always set the message id: this one no taskq driver wrote.
    throw new Error('no message id: not a message of this driver');
  }
  const raw = (message.properties.headers ?? {}) as Record<string, unknown>;
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(raw)) {
    if (!isBrokerHeader(name)) headers[name] = String(value);
  }
  const priority = message.properties.priority as number | undefined;
  const envelope: Envelope = {
    i: String(message.properties.messageId),
    a: Number(raw[HEADER.attempt] ?? 1),
    c: Number(raw[HEADER.deliveries] ?? 0),
    p: Number(raw[HEADER.priority] ?? priority ?? 0),
    h: headers,
    b: JSON.parse(text) as unknown,
  };
  const dedup = raw[HEADER.dedup];
  if (typeof dedup === 'string') envelope.k = dedup;
  if (raw[HEADER.reason] !== undefined) envelope.r = String(raw[HEADER.reason]);
  if (raw[HEADER.deadAt] !== undefined) envelope.t = Number(raw[HEADER.deadAt]);
  return envelope;
}
