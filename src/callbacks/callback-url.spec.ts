import { isIP } from 'node:net';
import {
  CallbackAddressError,
  checkCallbackUrl,
  classifyAddress,
  embeddedIpv4,
  guardedLookup,
} from './callback-url';

describe(checkCallbackUrl.name, () => {
  it.each([
    'https://example.com/hook',
    'http://example.com:8080/a?b=c',
    'https://93.184.216.34/hook',
    'http://[2606:2800:220:1:248:1893:25c8:1946]/hook',
    'https://user:pass@hooks.example.org/x',
  ])('accepts the public URL %s', (url) => {
    expect(checkCallbackUrl(url, false)).toBeUndefined();
  });

  it.each([
    ['not a url', /absolute http or https URL/],
    ['/relative/path', /absolute http or https URL/],
    ['ftp://example.com/file', /http or https, not ftp/],
    ['file:///etc/passwd', /http or https, not file/],
    ['javascript:alert(1)', /http or https, not javascript/],
    ['gopher://example.com', /http or https, not gopher/],
  ])('refuses %s for its scheme or form', (url, message) => {
    const error = checkCallbackUrl(url, true);
    expect(error).toMatch(message);
    expect(error).toMatch(/^callbackUrl /);
  });

  it.each([
    'http://169.254.169.254/latest/meta-data/',
    'http://169.254.1.1/',
    'http://[fe80::1]/',
    'http://[fd00:ec2::254]/',
    'http://0.0.0.0:8080/',
    'http://0/',
    'http://[::]/',
    'http://[::ffff:169.254.169.254]/',
    'http://224.0.0.1/',
    'http://255.255.255.255/',
    'http://metadata.google.internal/computeMetadata/v1/',
    'http://METADATA.GOOGLE.INTERNAL./',
  ])('refuses %s even with allowPrivate', (url) => {
    expect(checkCallbackUrl(url, true)).toMatch(/^callbackUrl must not point to /);
    expect(checkCallbackUrl(url, false)).toMatch(/^callbackUrl must not point to /);
  });

  it.each([
    'http://127.0.0.1:3000/hook',
    'http://127.1.2.3/',
    'http://2130706433/', // 127.0.0.1 as one number
    'http://0x7f.1/', // 127.0.0.1 in hex shorthand
    'http://10.0.0.5/',
    'http://172.16.0.1/',
    'http://172.31.255.255/',
    'http://192.168.1.10/',
    'http://100.64.0.1/',
    'http://[::1]:8080/',
    'http://[fc00::1]/',
    'http://[fd12:3456::1]/',
    'http://[::ffff:10.0.0.1]/',
    'http://localhost:3000/',
    'http://api.localhost/',
  ])('refuses the loopback or private %s unless allowPrivate', (url) => {
    expect(checkCallbackUrl(url, false)).toMatch(
      /loopback or private.*CALLBACK_ALLOW_PRIVATE=true/,
    );
    expect(checkCallbackUrl(url, true)).toBeUndefined();
  });

  it.each([
    'http://100.100.100.200/latest/meta-data/', // Alibaba, inside 100.64.0.0/10
    'http://169.254.170.2/v2/credentials', // AWS ECS
    'http://168.63.129.16/', // Azure WireServer, a public address
    'http://192.0.0.192/', // Oracle classic
    'http://[fd00:ec2::254]/',
    'http://[fd20:ce::254]/',
    'http://[::ffff:100.100.100.200]/',
    'http://[64:ff9b::6464:64c8]/', // NAT64 of 100.100.100.200
    'http://metadata.goog/',
    'http://metadata.tencentyun.com/',
  ])('refuses the metadata address %s in every mode, naming it as such', (url) => {
    for (const allowPrivate of [true, false]) {
      expect(checkCallbackUrl(url, allowPrivate)).toMatch(
        /^callbackUrl must not point to .*(cloud metadata)/,
      );
    }
  });

  it.each([
    'http://[64:ff9b::a9fe:a9fe]/', // NAT64
    'http://[64:ff9b::169.254.169.254]/',
    'http://[64:ff9b:1::a9fe:a9fe]/', // local-use NAT64
    'http://[::a9fe:a9fe]/', // IPv4-compatible
    'http://[::169.254.169.254]/',
    'http://[::ffff:a9fe:a9fe]/', // IPv4-mapped
    'http://[::ffff:0:a9fe:a9fe]/', // IPv4-translated
    'http://[2002:a9fe:a9fe::]/', // 6to4
    'http://[2002:a9fe:a9fe:1::1]/',
    'http://[2001:0:4136:e378:8000:63bf:5601:5601]/', // Teredo, client 169.254.169.254 inverted
    'http://[2001:0:a9fe:a9fe::1]/', // Teredo, server 169.254.169.254
  ])('refuses %s, an IPv6 form of 169.254.169.254, in every mode', (url) => {
    expect(checkCallbackUrl(url, true)).toMatch(/^callbackUrl must not point to /);
    expect(checkCallbackUrl(url, false)).toMatch(/^callbackUrl must not point to /);
  });

  it.each([
    'http://[64:ff9b::7f00:1]/',
    'http://[::7f00:1]/',
    'http://[::ffff:0:7f00:1]/',
    'http://[2002:7f00:1::]/',
    'http://[2002:a00:1::1]/', // 6to4 of 10.0.0.1
    'http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/', // Teredo client 127.0.0.1
  ])('treats %s, an IPv6 form of a private address, as private', (url) => {
    expect(checkCallbackUrl(url, false)).toMatch(/loopback or private/);
    expect(checkCallbackUrl(url, true)).toBeUndefined();
  });

  it('leaves host names to the check at send time', () => {
    expect(checkCallbackUrl('http://internal.corp.example/', false)).toBeUndefined();
  });

  it.each(['172.15.255.255', '172.32.0.0', '11.0.0.1', '192.169.0.1', '100.128.0.1'])(
    'treats %s, just outside the private ranges, as public',
    (ip) => {
      expect(checkCallbackUrl(`http://${ip}/`, false)).toBeUndefined();
    },
  );
});

describe(classifyAddress.name, () => {
  it.each([
    ['8.8.8.8', 'public'],
    ['2001:4860:4860::8888', 'public'],
    ['127.0.0.1', 'private'],
    ['::1', 'private'],
    ['::ffff:7f00:1', 'private'],
    ['169.254.169.254', 'metadata'],
    ['169.254.1.1', 'forbidden'],
    ['100.100.100.200', 'metadata'],
    ['100.100.100.201', 'private'],
    ['fd00:ec2::254', 'metadata'],
    ['64:ff9b::808:808', 'public'], // NAT64 of 8.8.8.8
    ['2002:808:808::1', 'public'], // 6to4 of 8.8.8.8
    ['::ffff:0:a9fe:a9fe', 'metadata'],
    ['::', 'forbidden'],
    ['fe80::1%eth0', 'forbidden'],
    ['not-an-ip', 'forbidden'],
  ] as const)('%s is %s', (address, expected) => {
    expect(classifyAddress(address)).toBe(expected);
  });
});

describe(embeddedIpv4.name, () => {
  it.each([
    ['::ffff:1.2.3.4', ['1.2.3.4']],
    ['::ffff:0102:0304', ['1.2.3.4']],
    ['::ffff:0:1.2.3.4', ['1.2.3.4']],
    ['::1.2.3.4', ['1.2.3.4']],
    ['64:ff9b::102:304', ['1.2.3.4']],
    ['2002:102:304::', ['1.2.3.4']],
    ['2001:0:4136:e378:8000:63bf:fefd:fcfb', ['65.54.227.120', '1.2.3.4']],
    ['::1', []],
    ['::', []],
    ['2001:db8::1', []],
    ['2606:2800:220:1:248:1893:25c8:1946', []],
    ['1.2.3.4', []],
  ])('%s carries %j', (address, expected) => {
    expect(embeddedIpv4(address)).toEqual(expected);
  });
});

describe(guardedLookup.name, () => {
  type Result = { error: NodeJS.ErrnoException | null; address: unknown; family?: number };

  function lookup(
    addresses: { address: string; family: number }[],
    allowPrivate: boolean,
    all: boolean,
  ): Promise<Result> {
    const sut = guardedLookup(allowPrivate, async () => addresses);
    return new Promise((resolve) =>
      sut('hooks.example.com', { all }, (error, address, family) =>
        resolve({ error, address, family }),
      ),
    );
  }

  it('answers the first address, or all of them, when every address is public', async () => {
    const addresses = [
      { address: '93.184.216.34', family: 4 },
      { address: '2606:2800:220:1::1', family: 6 },
    ];
    expect(await lookup(addresses, false, false)).toEqual({
      error: null,
      address: '93.184.216.34',
      family: 4,
    });
    expect(await lookup(addresses, false, true)).toEqual({
      error: null,
      address: addresses,
      family: undefined,
    });
  });

  it('refuses a name when any of its addresses is private (DNS rebinding)', async () => {
    const result = await lookup(
      [
        { address: '93.184.216.34', family: 4 },
        { address: '10.1.2.3', family: 4 },
      ],
      false,
      true,
    );
    expect(result.error).toBeInstanceOf(CallbackAddressError);
    expect(result.error?.message).toMatch(/hooks\.example\.com resolves to 10\.1\.2\.3/);
  });

  it('allows a private address with allowPrivate, never a metadata address', async () => {
    expect((await lookup([{ address: '127.0.0.1', family: 4 }], true, false)).error).toBeNull();
    for (const address of ['169.254.169.254', '100.100.100.200', '64:ff9b::a9fe:a9fe']) {
      const metadata = await lookup([{ address, family: isIP(address) }], true, false);
      expect(metadata.error).toBeInstanceOf(CallbackAddressError);
      expect(metadata.error?.message).toMatch(/cloud metadata address/);
    }
  });

  it('passes resolution errors on and refuses an empty answer', async () => {
    const failing = guardedLookup(false, () =>
      Promise.reject(Object.assign(new Error('getaddrinfo ENOTFOUND x'), { code: 'ENOTFOUND' })),
    );
    const error = await new Promise<NodeJS.ErrnoException | null>((resolve) =>
      failing('x', {}, (e) => resolve(e)),
    );
    expect(error?.code).toBe('ENOTFOUND');
    expect((await lookup([], true, false)).error?.message).toMatch(/has no address/);
  });
});
