import { get, type IncomingMessage } from 'node:http';

export interface SseStream {
  status: number;
  contentType: string | undefined;
  headers: IncomingMessage['headers'];
  /** Parsed `data:` payloads, in arrival order. */
  events: unknown[];
  /** Comment lines (`: text`) received. */
  comments: string[];
  /** Resolves when the server ends the stream. */
  ended: Promise<void>;
  /** Disconnects, as a client that goes away. */
  close(): void;
}

/**
 * Opens a server-sent event stream with a plain HTTP request (supertest buffers whole
 * responses) and parses it as it arrives. Resolves once the response headers are in.
 */
export function openSse(
  url: string,
  options: { localAddress?: string; headers?: Record<string, string> } = {},
): Promise<SseStream> {
  return new Promise((resolve, reject) => {
    const headers = { Accept: 'text/event-stream', ...options.headers };
    // localAddress (127.0.0.2, ...) makes the stream come from another client on loopback.
    const req = get(
      url,
      { headers, localAddress: options.localAddress },
      (res: IncomingMessage) => {
        const events: unknown[] = [];
        const comments: string[] = [];
        let buffer = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buffer += chunk;
          let end: number;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const data: string[] = [];
            for (const line of block.split('\n')) {
              if (line.startsWith(':')) comments.push(line.slice(1).trim());
              else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
            }
            if (data.length > 0) events.push(JSON.parse(data.join('\n')));
          }
        });
        const ended = new Promise<void>((done) => {
          res.on('end', done);
          res.on('close', done);
        });
        resolve({
          status: res.statusCode ?? 0,
          contentType: res.headers['content-type'],
          headers: res.headers,
          events,
          comments,
          ended,
          close: () => req.destroy(),
        });
      },
    );
    req.on('error', reject);
  });
}
