import { HttpStatus } from '@nestjs/common';
import type { IncomingHttpHeaders } from 'node:http';

/** The one answer, on both adapters, to a body that is not declared as JSON. */
export const UNSUPPORTED_MEDIA_TYPE_BODY = {
  statusCode: HttpStatus.UNSUPPORTED_MEDIA_TYPE,
  error: 'Unsupported Media Type',
  message: 'Content-Type must be application/json',
} as const;

/**
 * True when a request carries a body whose Content-Type is missing or not `application/json`
 * (parameters such as `charset` allowed). Checked before any body parser runs, so express does
 * not read a form-encoded body as `{"<the JSON>": ""}` and fastify does not answer with a body
 * of its own. A request without a body (e.g. `POST /tasks/:id/cancel`) needs no Content-Type.
 */
export function isUnsupportedBody(headers: IncomingHttpHeaders): boolean {
  const length = headers['content-length'];
  const hasBody =
    (length !== undefined && length !== '0') || headers['transfer-encoding'] !== undefined;
  if (!hasBody) return false;
  const mediaType = (headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  return mediaType !== 'application/json';
}
