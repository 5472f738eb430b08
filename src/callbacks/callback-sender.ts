import { lookup } from 'node:dns/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import {
  CALLBACK_SIGNATURE_HEADER,
  CALLBACK_TASK_ID_HEADER,
  signCallbackBody,
} from './callback-signature';
import {
  CallbackAddressError,
  checkCallbackUrl,
  guardedLookup,
  type Resolver,
} from './callback-url';

export interface CallbackRequest {
  url: string;
  taskId: string;
  /** The exact JSON text sent and signed. */
  body: string;
  /** HMAC key; the signature header is left out when empty. */
  secret: string;
  allowPrivate: boolean;
  /** Bounds the whole exchange: connect, send, and reading the answer. */
  signal: AbortSignal;
  /** Resolves host names (all addresses); DNS by default, a stub in tests. */
  resolve?: Resolver;
}

/** How much of an error answer's body is kept in `callback_error`. */
const ERROR_BODY_CHARS = 200;

const resolveAll = (hostname: string) => lookup(hostname, { all: true, verbatim: true });

/**
 * POSTs one callback. Resolves when the receiver answered 2xx; rejects with a short, storable
 * message otherwise (network error, timeout, non-2xx status), or with a
 * {@link CallbackAddressError} when the policy refuses the URL or an address its host resolves
 * to. Redirects are not followed: a 3xx is a failure, so a receiver cannot redirect the service
 * elsewhere.
 */
export function sendCallback(callback: CallbackRequest): Promise<void> {
  const refused = checkCallbackUrl(callback.url, callback.allowPrivate);
  if (refused) return Promise.reject(new CallbackAddressError(refused));
  const url = new URL(callback.url);
  const headers: Record<string, string> = {
    'Content-Type': 'application/json',
    'Content-Length': String(Buffer.byteLength(callback.body)),
    'User-Agent': 'taskq-callback',
    [CALLBACK_TASK_ID_HEADER]: callback.taskId,
  };
  if (callback.secret !== '') {
    headers[CALLBACK_SIGNATURE_HEADER] = signCallbackBody(callback.body, callback.secret);
  }
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise<void>((resolve, reject) => {
    const req = request(url, {
      method: 'POST',
      headers,
      signal: callback.signal,
      // Literal IP hosts were checked above; names are checked, every address, on connect.
      lookup: guardedLookup(callback.allowPrivate, callback.resolve ?? resolveAll),
    });
    req.on('error', (error) => reject(describe(error, callback.signal)));
    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        if (text.length < ERROR_BODY_CHARS) text += chunk;
      });
      res.on('error', (error) => reject(describe(error, callback.signal)));
      res.on('end', () => {
        if (status >= 200 && status < 300) return resolve();
        const snippet = text.trim().slice(0, ERROR_BODY_CHARS);
        reject(new Error(`receiver answered ${status}${snippet ? `: ${snippet}` : ''}`));
      });
    });
    req.end(callback.body);
  });
}

function describe(error: Error, signal: AbortSignal): Error {
  if (error instanceof CallbackAddressError) return error;
  if (signal.aborted) {
    // Not `instanceof Error`: AbortSignal.timeout's DOMException may come from another realm.
    const reason = signal.reason as { name?: unknown; message?: unknown } | undefined;
    if (reason?.name === 'TimeoutError') {
      return new Error('no answer within the callback timeout');
    }
    return new Error(typeof reason?.message === 'string' ? reason.message : 'aborted');
  }
  const code = (error as NodeJS.ErrnoException).code;
  return new Error(
    code && !error.message.includes(code) ? `${code}: ${error.message}` : error.message,
  );
}
