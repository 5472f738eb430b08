import { BlockList, isIP } from 'node:net';

/**
 * Where a callback may go. Callbacks are requests the service makes on a client's behalf, so a
 * callback URL must not reach what only the service can reach (server-side request forgery):
 *
 * - never: link-local (169.254.0.0/16, fe80::/10), cloud metadata endpoints (169.254.169.254,
 *   fd00:ec2::254, metadata.google.internal), unspecified (0.0.0.0/8, ::), multicast and
 *   broadcast addresses;
 * - only with `CALLBACK_ALLOW_PRIVATE=true`: loopback (127.0.0.0/8, ::1, localhost) and private
 *   networks (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7).
 *
 * {@link checkCallbackUrl} checks what the URL alone shows (scheme, literal addresses, known
 * names) and is cheap enough for request validation; the dispatcher checks every address a host
 * name resolves to when it connects ({@link guardedLookup}), so a name that resolves, or later
 * re-resolves, to a forbidden address is refused too.
 */

/** Never reachable by a callback, whatever the configuration. */
const forbidden = new BlockList();
forbidden.addSubnet('0.0.0.0', 8, 'ipv4'); // "this network", includes the unspecified 0.0.0.0
forbidden.addSubnet('169.254.0.0', 16, 'ipv4'); // link-local, includes 169.254.169.254
forbidden.addSubnet('224.0.0.0', 4, 'ipv4'); // multicast
forbidden.addSubnet('240.0.0.0', 4, 'ipv4'); // reserved, includes 255.255.255.255
forbidden.addAddress('::', 'ipv6'); // unspecified
forbidden.addSubnet('fe80::', 10, 'ipv6'); // link-local
forbidden.addSubnet('ff00::', 8, 'ipv6'); // multicast
forbidden.addAddress('fd00:ec2::254', 'ipv6'); // AWS metadata over IPv6

/** Reachable only with `allowPrivate`. */
const privateNetworks = new BlockList();
privateNetworks.addSubnet('127.0.0.0', 8, 'ipv4');
privateNetworks.addSubnet('10.0.0.0', 8, 'ipv4');
privateNetworks.addSubnet('172.16.0.0', 12, 'ipv4');
privateNetworks.addSubnet('192.168.0.0', 16, 'ipv4');
privateNetworks.addSubnet('100.64.0.0', 10, 'ipv4'); // carrier-grade NAT
privateNetworks.addAddress('::1', 'ipv6');
privateNetworks.addSubnet('fc00::', 7, 'ipv6'); // unique local

/** Host names that always mean a metadata service. */
const METADATA_HOSTS = new Set(['metadata.google.internal', 'metadata', 'instance-data']);

export type AddressClass = 'public' | 'private' | 'forbidden';

/** An IPv4-mapped IPv6 address (`::ffff:127.0.0.1`) is classified as the IPv4 address. */
function unmapIpv4(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1];
  const hex = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(address);
  if (hex) {
    const high = parseInt(hex[1], 16);
    const low = parseInt(hex[2], 16);
    return [high >> 8, high & 255, low >> 8, low & 255].join('.');
  }
  return address;
}

/** Classifies a literal IP address; anything that is not one is 'forbidden'. */
export function classifyAddress(address: string): AddressClass {
  const plain = unmapIpv4(address.replace(/^\[|\]$/g, '').replace(/%.*$/, ''));
  const version = isIP(plain);
  if (version === 0) return 'forbidden';
  const type = version === 4 ? 'ipv4' : 'ipv6';
  if (forbidden.check(plain, type)) return 'forbidden';
  if (privateNetworks.check(plain, type)) return 'private';
  return 'public';
}

/** The error message for an address of class `kind`, or undefined when it may be used. */
function addressError(kind: AddressClass, allowPrivate: boolean, what: string): string | undefined {
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

/** An error refusing a connection because of where it would go. */
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
type Resolver = (hostname: string) => Promise<LookupAddress[]>;

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
          callback(new CallbackAddressError(`${hostname} has no address`), []);
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
