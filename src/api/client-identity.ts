import { isIPv6 } from 'node:net';

/**
 * Who a request counts against for per-client limits (rate limit, event streams): its API key's
 * name when the request was authenticated (`request.actor`, set by authentication), else the
 * address it came from. Works on the express and the fastify request alike.
 */
export function clientIdentity(request: unknown): string {
  const r = request as {
    actor?: { keyName?: string };
    ip?: string;
    socket?: { remoteAddress?: string };
  };
  if (r.actor?.keyName) return `key:${r.actor.keyName}`;
  return `ip:${addressGroup(r.ip ?? r.socket?.remoteAddress ?? 'unknown')}`;
}

/**
 * An IPv4 address as it is (also when IPv4-mapped); an IPv6 address by its /64, the block one
 * subscriber usually gets, so rotating through it does not make a client many.
 */
function addressGroup(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1];
  if (!isIPv6(address) || address === '::1') return address;
  const [head, tail = ''] = address.toLowerCase().split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = [
    ...left,
    ...new Array<string>(8 - left.length - right.length).fill('0'),
    ...right,
  ];
  return `${groups
    .slice(0, 4)
    .map((g) => parseInt(g, 16).toString(16))
    .join(':')}::/64`;
}
