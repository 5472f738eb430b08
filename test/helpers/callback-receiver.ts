import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedCallback {
  headers: IncomingHttpHeaders;
  /** The raw body, exactly as sent (what the signature covers). */
  body: string;
}

/**
 * A plain HTTP server standing in for a client's callback endpoint. `answer(n)` gives the status
 * for the n-th request (1-based), or a promise of it to hold the answer back.
 */
export async function startCallbackReceiver(
  answer: (n: number) => number | Promise<number>,
): Promise<{ url: string; received: ReceivedCallback[]; close(): Promise<void> }> {
  const received: ReceivedCallback[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      void Promise.resolve(answer(received.length)).then((status) => {
        res.writeHead(status, { 'Content-Type': 'text/plain' });
        res.end(status < 300 ? 'ok' : `receiver says no (${status})`);
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
