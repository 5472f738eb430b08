import { createHmac, timingSafeEqual } from 'node:crypto';

/** The header carrying a callback's signature: `sha256=<hex HMAC-SHA256 of the body>`. */
export const CALLBACK_SIGNATURE_HEADER = 'X-Taskq-Signature';
/** The header carrying the id of the task a callback reports. */
export const CALLBACK_TASK_ID_HEADER = 'X-Taskq-Task-Id';

/** `sha256=` and the hex HMAC-SHA256 of the exact `body` bytes under `secret`. */
export function signCallbackBody(body: string | Buffer, secret: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/**
 * Whether `signature` (the header's value) is the signature of `body` under `secret`; compared
 * in constant time. What a receiver does, given the raw body it read.
 */
export function verifyCallbackSignature(
  body: string | Buffer,
  secret: string,
  signature: string | undefined,
): boolean {
  if (signature === undefined) return false;
  const expected = Buffer.from(signCallbackBody(body, secret));
  const actual = Buffer.from(signature);
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}
