import { BlockList, isIP } from 'node:net';

/**
 * Where a callback may go. Callbacks are requests the service makes on a client's behalf, so a
 * callback URL must not reach what only the service can reach (server-side request forgery):
 *
 * - never: cloud metadata endpoints (169.254.169.254, 100.100.100.200, fd00:ec2::254,
 *   metadata.google.internal, ... see METADATA_ADDRESSES), link-local (169.254.0.0/16,
 *   fe80::/10), unspecified (0.0.0.0/8, ::), multicast and broadcast addresses;
 * - only with `CALLBACK_ALLOW_PRIVATE=true`: loopback (127.0.0.0/8, ::1, localhost) and private
 *   networks (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7).
 *
 * An IPv6 address that carries an IPv4 address (mapped, compatible, NAT64, 6to4, Teredo) is
 * judged by that IPv4 address too, so `[64:ff9b::a9fe:a9fe]` is 169.254.169.254.
 *
 * {@link checkCallbackUrl} checks what the URL alone shows (scheme, literal addresses, known
 * names) and is cheap enough for request validation; the dispatcher checks every address a host
 * name resolves to when it connects ({@link guardedLookup}), so a name that resolves, or later
 * re-resolves, to a forbidden address is refused too.
 */

/**
 * Cloud metadata and platform endpoints: never reachable, whatever the configuration, even where
 * the address lies in a range `CALLBACK_ALLOW_PRIVATE` opens (Alibaba's is in 100.64.0.0/10).
 */
const METADATA_ADDRESSES: readonly string[] = [
  '169.254.169.254', // AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle, Hetzner, ...
  '169.254.170.2', // AWS ECS task metadata and credentials
  '169.254.169.253', // AWS DNS resolver
  '169.254.169.123', // AWS time sync
  '169.254.0.23', // Tencent Cloud
  '100.100.100.200', // Alibaba Cloud
  '192.0.0.192', // Oracle Cloud (classic)
  '168.63.129.16', // Azure WireServer (host platform)
  'fd00:ec2::254', // AWS metadata over IPv6
  'fd00:ec2::253', // AWS DNS over IPv6
  'fd00:ec2::123', // AWS time sync over IPv6
  'fd20:ce::254', // GCP metadata over IPv6
];
const metadata = new BlockList();
for (const address of METADATA_ADDRESSES) {
  metadata.addAddress(address, isIP(address) === 4 ? 'ipv4' : 'ipv6');
}

/** Never reachable by a callback, whatever the configuration. */
const forbidden = new BlockList();
forbidden.addSubnet('0.0.0.0', 8, 'ipv4'); // "this network", includes the unspecified 0.0.0.0
forbidden.addSubnet('169.254.0.0', 16, 'ipv4'); // link-local, includes 169.254.169.254
forbidden.addSubnet('224.0.0.0', 4, 'ipv4'); // multicast
forbidden.addSubnet('240.0.0.0', 4, 'ipv4'); // reserved, includes 255.255.255.255
forbidden.addAddress('::', 'ipv6'); // unspecified
forbidden.addSubnet('fe80::', 10, 'ipv6'); // link-local
forbidden.addSubnet('ff00::', 8, 'ipv6'); // multicast

/** Reachable only with `allowPrivate`. */
const privateNetworks = new BlockList();
privateNetworks.addSubnet('127.0.0.0', 8, 'ipv4');
privateNetworks.addSubnet('10.0.0.0', 8, 'ipv4');
privateNetworks.addSubnet('172.16.0.0', 12, 'ipv4');
privateNetworks.addSubnet('192.168.0.0', 16, 'ipv4');
privateNetworks.addSubnet('100.64.0.0', 10, 'ipv4'); // carrier-grade NAT
privateNetworks.addSubnet('192.0.0.0', 24, 'ipv4'); // IETF protocol assignments
privateNetworks.addSubnet('198.18.0.0', 15, 'ipv4'); // benchmarking, used inside data centres
privateNetworks.addAddress('::1', 'ipv6');
privateNetworks.addSubnet('fc00::', 7, 'ipv6'); // unique local
privateNetworks.addSubnet('fec0::', 10, 'ipv6'); // site-local (deprecated, still routed inside sites)
privateNetworks.addSubnet('64:ff9b:1::', 48, 'ipv6'); // local-use NAT64: the operator's own network

/** Host names that always mean a metadata service. */
const METADATA_HOSTS = new Set([
  'metadata.google.internal',
  'metadata.goog',
  'metadata',
  'instance-data',
  'instance-data.ec2.internal',
  'metadata.tencentyun.com',
  'metadata.azure.internal',
]);

export type AddressClass = 'public' | 'private' | 'forbidden' | 'metadata';

/** Most restrictive last: the class of an address is the worst of the ones it stands for. */
const SEVERITY: readonly AddressClass[] = ['public', 'private', 'forbidden', 'metadata'];

/**
 * The eight 16-bit groups of an IPv6 address (a trailing dotted IPv4 part included), or
 * undefined when it is not one.
 */
function ipv6Groups(address: string): number[] | undefined {
  if (isIP(address) !== 6) return undefined;
  let text = address.toLowerCase();
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number);
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split('::');
  const parse = (part: string | undefined) =>
    part ? part.split(':').map((group) => parseInt(group, 16)) : [];
  const left = parse(head);
  const right = parse(tail);
  const zeros = tail === undefined ? [] : new Array<number>(8 - left.length - right.length).fill(0);
  const groups = [...left, ...zeros, ...right];
  return groups.length === 8 ? groups : undefined;
}

const ipv4Of = (high: number, low: number): string =>
  [high >> 8, high & 255, low >> 8, low & 255].join('.');

/**
 * The IPv4 addresses an IPv6 address carries and that a packet to it may end up at: IPv4-mapped
 * (`::ffff:a.b.c.d`), IPv4-translated (`::ffff:0:a.b.c.d`), IPv4-compatible (`::a.b.c.d`), NAT64
 * (`64:ff9b::/96`, and the local-use `64:ff9b:1::/48` with its usual /96 layout), 6to4
 * (`2002:AABB:CCDD::/48`) and Teredo (`2001:0::/32`: the server's address, and the client's,
 * stored inverted).
 */
export function embeddedIpv4(address: string): string[] {
  const g = ipv6Groups(address);
  if (!g) return [];
  const zeroUpTo = (n: number) => g.slice(0, n).every((group) => group === 0);
  if (zeroUpTo(5) && g[5] === 0xffff) return [ipv4Of(g[6], g[7])];
  if (zeroUpTo(4) && g[4] === 0xffff && g[5] === 0) return [ipv4Of(g[6], g[7])];
  // ::a.b.c.d, but not :: and ::1, which are IPv6's own unspecified and loopback addresses.
  if (zeroUpTo(6) && (g[6] !== 0 || g[7] > 1)) return [ipv4Of(g[6], g[7])];
  if (g[0] === 0x64 && g[1] === 0xff9b && (g[2] === 0 || g[2] === 1)) return [ipv4Of(g[6], g[7])];
  if (g[0] === 0x2002) return [ipv4Of(g[1], g[2])];
  if (g[0] === 0x2001 && g[1] === 0)
    return [ipv4Of(g[2], g[3]), ipv4Of(~g[6] & 0xffff, ~g[7] & 0xffff)];
  return [];
}

function classifyPlain(plain: string, type: 'ipv4' | 'ipv6'): AddressClass {
  if (metadata.check(plain, type)) return 'metadata';
  if (forbidden.check(plain, type)) return 'forbidden';
  if (privateNetworks.check(plain, type)) return 'private';
  return 'public';
}

/**
 * Classifies a literal IP address; anything that is not one is 'forbidden'. An IPv6 address
 * that embeds an IPv4 address is as restricted as the more restricted of the two.
 */
export function classifyAddress(address: string): AddressClass {
  const plain = address.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  const version = isIP(plain);
  if (version === 0) return 'forbidden';
  if (version === 4) return classifyPlain(plain, 'ipv4');
  const classes = [
    classifyPlain(plain, 'ipv6'),
    ...embeddedIpv4(plain).map((ipv4) => classifyPlain(ipv4, 'ipv4')),
  ];
  return classes.reduce((worst, next) =>
    SEVERITY.indexOf(next) > SEVERITY.indexOf(worst) ? next : worst,
  );
}

/** The error message for an address of class `kind`, or undefined when it may be used. */
function addressError(kind: AddressClass, allowPrivate: boolean, what: string): string | undefined {
  if (kind === 'metadata') {
    return `callbackUrl must not point to ${what} (a cloud metadata address)`;
  }
  if (kind === 'forbidden') {
    return `callbackUrl must not point to ${what} (link-local, metadata, unspecified or multicast)`;
  }
  if (kind === 'private' && !allowPrivate) {
    return `callbackUrl must not point to ${what} (a loopback or private address) unless CALLBACK_ALLOW_PRIVATE=true`;
  }
  return undefined;
}

/**
 * Checks what the URL itself shows: an absolute http(s) URL, not to a literal forbidden address,
 * a metadata host name, or (without `allowPrivate`) a literal private address or `localhost`.
 * Host names are resolved only when the callback is sent.
 *
 * @returns a message naming `callbackUrl`, or undefined when the URL is acceptable
 */
export function checkCallbackUrl(url: string, allowPrivate: boolean): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'callbackUrl must be an absolute http or https URL';
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    return `callbackUrl must use http or https, not ${parsed.protocol.replace(/:$/, '')}`;
  }
  // URL normalises numeric forms (http://2130706433/, http://0x7f.1/) to dotted IPv4.
  const host = parsed.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (host === '') return 'callbackUrl must name a host';
  if (isIP(host) !== 0) return addressError(classifyAddress(host), allowPrivate, host);
  const name = host.replace(/\.$/, '');
  if (METADATA_HOSTS.has(name)) {
    return `callbackUrl must not point to ${name} (a cloud metadata service)`;
  }
  if (name === 'localhost' || name.endsWith('.localhost')) {
    return addressError('private', allowPrivate, name);
  }
  return undefined;
}

/**
 * An error refusing a connection because of where it would go: the policy's answer, which a
 * retry would not change, so the callback fails at once.
 */
export class CallbackAddressError extends Error {
  override readonly name = 'CallbackAddressError';
}

interface LookupAddress {
  address: string;
  family: number;
}
type LookupCallback = (
  error: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;
type LookupFunction = (
  hostname: string,
  options: { all?: boolean },
  callback: LookupCallback,
) => void;
export type Resolver = (hostname: string) => Promise<LookupAddress[]>;

/**
 * A `lookup` for `http.request` that resolves the host name (all addresses) and refuses the
 * connection unless every address is allowed. Used at connect time, so the address checked is
 * the address connected to: a DNS answer that changes between check and use (rebinding) cannot
 * slip through.
 */
export function guardedLookup(allowPrivate: boolean, resolve: Resolver): LookupFunction {
  return (hostname, options, callback) => {
    resolve(hostname).then(
      (addresses) => {
        if (addresses.length === 0) {
          // Not a refusal: DNS may answer later, so this is retried like a network error.
          const error: NodeJS.ErrnoException = new Error(`${hostname} has no address`);
          error.code = 'ENODATA';
          callback(error, []);
          return;
        }
        for (const { address } of addresses) {
          const error = addressError(classifyAddress(address), allowPrivate, address);
          if (error) {
            callback(new CallbackAddressError(`${hostname} resolves to ${address}: ${error}`), []);
            return;
          }
        }
        if (options.all) callback(null, addresses);
        else callback(null, addresses[0].address, addresses[0].family);
      },
      (error: NodeJS.ErrnoException) => callback(error, []),
    );
  };
}
