import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sendCallback } from './callback-sender';
import { verifyCallbackSignature } from './callback-signature';
import { CallbackAddressError } from './callback-url';

describe(sendCallback.name, () => {
  let server: Server;
  let url: string;
  let handle: (respond: (status: number, headers?: Record<string, string>) => void) => void;
  const seen: { headers: IncomingHttpHeaders; body: string }[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => (body += chunk));
      req.on('end', () => {
        seen.push({ headers: req.headers, body });
        handle((status, headers) => {
          res.writeHead(status, headers);
          res.end(`answer ${status}`);
        });
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  beforeEach(() => (seen.length = 0));

  const send = (overrides: Partial<Parameters<typeof sendCallback>[0]> = {}) =>
    sendCallback({
      url,
      taskId: 'task-1',
      body: '{"id":"task-1"}',
      secret: 'key',
      allowPrivate: true,
      signal: AbortSignal.timeout(10_000),
      ...overrides,
    });

  it('POSTs the exact body, signed, with the task id', async () => {
    handle = (respond) => respond(200);
    await send();
    expect(seen).toHaveLength(1);
    expect(seen[0].body).toBe('{"id":"task-1"}');
    expect(seen[0].headers['x-taskq-task-id']).toBe('task-1');
    expect(
      verifyCallbackSignature(seen[0].body, 'key', seen[0].headers['x-taskq-signature'] as string),
    ).toBe(true);
  });

  it('sends no signature header without a secret', async () => {
    handle = (respond) => respond(204);
    await send({ secret: '' });
    expect(seen[0].headers['x-taskq-signature']).toBeUndefined();
  });

  it('fails on a redirect instead of following it', async () => {
    handle = (respond) => respond(302, { Location: 'http://169.254.169.254/' });
    await expect(send()).rejects.toThrow('receiver answered 302: answer 302');
    expect(seen).toHaveLength(1);
  });

  it('fails with a clear message when the receiver does not answer in time', async () => {
    handle = () => undefined; // never answers
    await expect(send({ signal: AbortSignal.timeout(50) })).rejects.toThrow(
      'no answer within the callback timeout',
    );
  });

  it('refuses a forbidden address without connecting', async () => {
    const refusal = send({ allowPrivate: false });
    await expect(refusal).rejects.toThrow(/loopback or private/);
    await expect(refusal).rejects.toBeInstanceOf(CallbackAddressError);
    expect(seen).toHaveLength(0);
  });

  // A stub resolver stands in for DNS: these names are never looked up for real.
  const resolvesTo = (address: string) => async (hostname: string) => {
    expect(hostname).toBe('hooks.example.test');
    return [{ address, family: 4 }];
  };
  const byName = () => url.replace('127.0.0.1', 'hooks.example.test');

  it('refuses, with a CallbackAddressError, a name that resolves to loopback', async () => {
    const refusal = send({ url: byName(), allowPrivate: false, resolve: resolvesTo('127.0.0.1') });
    await expect(refusal).rejects.toBeInstanceOf(CallbackAddressError);
    await expect(refusal).rejects.toThrow(/hooks\.example\.test resolves to 127\.0\.0\.1/);
    expect(seen).toHaveLength(0);
  });

  it('connects to the address the resolver answered when the policy allows it', async () => {
    handle = (respond) => respond(200);
    await send({ url: byName(), allowPrivate: true, resolve: resolvesTo('127.0.0.1') });
    expect(seen).toHaveLength(1);
    expect(seen[0].headers.host).toMatch(/^hooks\.example\.test:/);
  });
});
