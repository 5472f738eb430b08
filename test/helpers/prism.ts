import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { ROOT } from './child-process';

export interface PrismProxy {
  /** Prism's own URL: requests go through it to the upstream. */
  url: string;
  /** Everything Prism logged (its violations among them). */
  log(): string;
  close(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * Starts Stoplight Prism as a validating proxy in front of `upstream`
 * (`prism proxy <document> <upstream> --errors`): every request and response is checked against
 * the OpenAPI document, and with `--errors` a response that does not match it is replaced by a
 * Prism error (an `https://stoplight.io/prism/errors#...` problem) instead of being passed on.
 */
export async function startPrismProxy(
  upstream: string,
  document = join(ROOT, 'openapi.json'),
): Promise<PrismProxy> {
  const port = await freePort();
  const bin = join(ROOT, 'node_modules', '@stoplight', 'prism-cli', 'dist', 'index.js');
  const child: ChildProcess = spawn(
    process.execPath,
    [bin, 'proxy', document, upstream, '--errors', '--port', String(port), '--host', '127.0.0.1'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  const ready = new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      if (output.includes('Prism is listening')) resolve();
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) =>
      reject(new Error(`prism exited (${code}) before listening:\n${output}`)),
    );
  });
  await ready;
  return {
    url: `http://127.0.0.1:${port}`,
    log: () => output,
    close: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
