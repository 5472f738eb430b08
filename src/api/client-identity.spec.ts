import { clientIdentity } from './client-identity';

describe(clientIdentity.name, () => {
  it("is the API key's name when authentication named an actor", () => {
    const actor = { keyName: 'ci', tenant: 'acme', scopes: [], actions: [] };
    expect(clientIdentity({ actor, ip: '10.0.0.1' })).toBe('key:ci');
  });

  it('is the address when the service runs open', () => {
    expect(clientIdentity({ actor: undefined, ip: '10.0.0.1' })).toBe('ip:10.0.0.1');
    expect(clientIdentity({ socket: { remoteAddress: '::1' } })).toBe('ip:::1');
  });

  it('counts an IPv6 client by its /64, which one host can fill with addresses', () => {
    expect(clientIdentity({ ip: '2001:db8:1:2:aaaa::1' })).toBe('ip:2001:db8:1:2::/64');
    expect(clientIdentity({ ip: '2001:db8:1:2:bbbb::9' })).toBe('ip:2001:db8:1:2::/64');
    expect(clientIdentity({ ip: '::ffff:10.0.0.1' })).toBe('ip:10.0.0.1');
  });
});
