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
  return `ip:${r.ip ?? r.socket?.remoteAddress ?? 'unknown'}`;
}
