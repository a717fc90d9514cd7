import { expect } from 'chai';
import {
  blockedRangeOf,
  CallbackUrlRejected,
  checkCallbackUrl,
  MAX_CALLBACK_URL_LENGTH,
  resolveCallbackTarget,
  validateCallbackUrlSyntax,
  type HostResolver,
  type ResolvedAddress,
} from '../../src/callbacks/url-policy.js';
import { rejection } from '../helpers/assertions.js';

/** A resolver that answers from a table and records what it was asked. */
function fakeDns(table: Record<string, string[]>): HostResolver & { asked: string[] } {
  const asked: string[] = [];
  const resolve = async (hostname: string): Promise<ResolvedAddress[]> => {
    asked.push(hostname);
    const addresses = table[hostname];
    if (addresses === undefined) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
    return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
  return Object.assign(resolve, { asked });
}

const PRIVATE_URLS = [
  'http://127.0.0.1/',
  'http://127.1.2.3:8080/cb',
  'http://10.1.2.3/',
  'http://172.16.0.1/',
  'http://172.31.255.255/',
  'http://192.168.1.1/',
  'http://169.254.169.254/latest/meta-data/',
  'http://100.64.0.1/',
  'http://0.0.0.0/',
  'http://224.0.0.1/',
  'http://255.255.255.255/',
  'http://2130706433/', // 127.0.0.1 as one decimal number
  'http://0x7f.1/', // 127.0.0.1 in hex shorthand
  'http://[::1]/',
  'http://[::]/',
  'http://[fc00::1]/',
  'http://[fd12:3456::1]/',
  'http://[fe80::1]/',
  'http://[fec0::1]/',
  'http://[ff02::1]/',
  'http://[::ffff:127.0.0.1]/',
  'http://[::ffff:10.0.0.1]/',
  'http://[::ffff:169.254.169.254]/',
  'http://[::ffff:0:127.0.0.1]/',
  'http://[64:ff9b::127.0.0.1]/',
  'http://[::127.0.0.1]/',
  'http://[2001:db8::1]/',
  'http://localhost/',
  'http://LocalHost.:8080/',
  'http://api.localhost/',
];

const PUBLIC_URLS = ['http://93.184.215.14/', 'https://8.8.8.8:8443/cb?x=1', 'http://[2606:4700:4700::1111]/', 'http://[::ffff:8.8.8.8]/', 'http://172.32.0.1/'];

describe('checkCallbackUrl', () => {
  describe('with private addresses refused', () => {
    for (const url of PRIVATE_URLS) {
      it(`refuses ${url}`, async () => {
        const err = await rejection(checkCallbackUrl(url, { allowPrivateAddresses: false, resolve: fakeDns({}) }));
        expect(err).to.be.instanceOf(CallbackUrlRejected).with.property('reason', 'private-address');
        expect((err as CallbackUrlRejected).permanent).to.equal(false);
        expect((err as Error).message).to.contain('MEDIAJOBS_ALLOW_PRIVATE_CALLBACKS');
      });
    }

    for (const url of PUBLIC_URLS) {
      it(`accepts the public literal ${url} without asking DNS`, async () => {
        const dns = fakeDns({});
        expect((await checkCallbackUrl(url, { allowPrivateAddresses: false, resolve: dns })).href).to.equal(new URL(url).href);
        expect(dns.asked).to.deep.equal([]);
      });
    }

    it('says which range matched', async () => {
      const err = await rejection(checkCallbackUrl('http://169.254.169.254/', { allowPrivateAddresses: false }));
      expect((err as Error).message).to.match(/link-local.*169\.254\.0\.0\/16/);
    });

    it('accepts a name whose every address is public', async () => {
      const resolve = fakeDns({ 'hooks.example.com': ['93.184.215.14', '2606:2800:21f:cb07:6820:80da:af6b:8b2c'] });
      const target = await resolveCallbackTarget('https://hooks.example.com/ci', { allowPrivateAddresses: false, resolve });
      expect(target.url.href).to.equal('https://hooks.example.com/ci');
      expect(target.addresses.map((a) => a.address)).to.deep.equal(['93.184.215.14', '2606:2800:21f:cb07:6820:80da:af6b:8b2c']);
    });

    it('refuses a name with one private address among public ones, naming it', async () => {
      const resolve = fakeDns({ 'mixed.example.com': ['93.184.215.14', '10.0.0.7'] });
      const err = await rejection(checkCallbackUrl('http://mixed.example.com/', { allowPrivateAddresses: false, resolve }));
      expect(err).to.be.instanceOf(CallbackUrlRejected);
      expect((err as Error).message).to.contain('mixed.example.com (mixed.example.com resolves to 10.0.0.7)');
    });

    it('refuses a name that resolves to an IPv4-mapped loopback address', async () => {
      const resolve = fakeDns({ 'sneaky.example.com': ['::ffff:7f00:1'] });
      const err = await rejection(checkCallbackUrl('http://sneaky.example.com/', { allowPrivateAddresses: false, resolve }));
      expect(err).to.be.instanceOf(CallbackUrlRejected).with.property('reason', 'private-address');
    });

    it('refuses localhost names without asking DNS', async () => {
      const dns = fakeDns({ 'api.localhost': ['93.184.215.14'] });
      await rejection(checkCallbackUrl('http://api.localhost/', { allowPrivateAddresses: false, resolve: dns }));
      expect(dns.asked).to.deep.equal([]);
    });

    it('passes a DNS failure through as is: it is not a verdict on the URL', async () => {
      const err = await rejection(checkCallbackUrl('http://nowhere.example.com/', { allowPrivateAddresses: false, resolve: fakeDns({}) }));
      expect(err).to.not.be.instanceOf(CallbackUrlRejected);
      expect(err).to.have.property('code', 'ENOTFOUND');
    });

    it('fails when the name resolves to no address at all', async () => {
      const err = await rejection(checkCallbackUrl('http://empty.example.com/', { allowPrivateAddresses: false, resolve: fakeDns({ 'empty.example.com': [] }) }));
      expect(err).to.have.property('code', 'ENODATA');
    });
  });

  describe('with private addresses allowed', () => {
    const loopback = fakeDns({ localhost: ['127.0.0.1'], 'localhost.': ['127.0.0.1'], 'api.localhost': ['127.0.0.1'] });
    for (const url of PRIVATE_URLS) {
      it(`accepts ${url}`, async () => {
        const resolve = url.toLowerCase().includes('localhost') ? loopback : fakeDns({});
        expect(await checkCallbackUrl(url, { allowPrivateAddresses: true, resolve })).to.be.instanceOf(URL);
      });
    }

    it('resolves localhost through the system resolver', async () => {
      const target = await resolveCallbackTarget('http://localhost:8080/cb', { allowPrivateAddresses: true });
      expect(target.addresses.length).to.be.greaterThan(0);
      for (const { address } of target.addresses) expect(blockedRangeOf(address)).to.match(/loopback/);
    });

    it('still refuses what the syntax rules refuse', async () => {
      const err = await rejection(checkCallbackUrl('ftp://127.0.0.1/', { allowPrivateAddresses: true }));
      expect(err).to.be.instanceOf(CallbackUrlRejected).with.property('reason', 'unsupported-scheme');
    });
  });
});

describe('validateCallbackUrlSyntax', () => {
  const refused: Array<[string, string]> = [
    ['ftp://example.com/file', 'unsupported-scheme'],
    ['file:///etc/passwd', 'unsupported-scheme'],
    ['gopher://example.com:70/', 'unsupported-scheme'],
    ['javascript:alert(1)', 'unsupported-scheme'],
    ['not a url', 'invalid-url'],
    ['/relative/path', 'invalid-url'],
    ['no', 'invalid-url'],
    ['http://user:secret@example.com/', 'credentials'],
    ['http://user@example.com/', 'credentials'],
    ['http://example.com:0/', 'invalid-port'],
    ['http://example.com:65536/', 'invalid-url'],
    [`https://example.com/${'a'.repeat(MAX_CALLBACK_URL_LENGTH)}`, 'too-long'],
  ];
  for (const [url, reason] of refused) {
    it(`refuses ${url.slice(0, 60)} as ${reason}`, () => {
      expect(() => validateCallbackUrlSyntax(url)).to.throw(CallbackUrlRejected).with.property('reason', reason);
    });
  }

  it('marks syntax refusals permanent', () => {
    try {
      validateCallbackUrlSyntax('ftp://example.com/');
      expect.fail('expected a throw');
    } catch (err) {
      expect((err as CallbackUrlRejected).permanent).to.equal(true);
    }
  });

  it('accepts http and https URLs with ports, paths and queries', () => {
    expect(validateCallbackUrlSyntax('https://hooks.example.com:8443/ci/notify?token=abc').href).to.equal('https://hooks.example.com:8443/ci/notify?token=abc');
    expect(validateCallbackUrlSyntax('HTTP://Example.COM/cb').href).to.equal('http://example.com/cb');
  });

  it('leaves private literals to the delivery-time check unless asked', () => {
    expect(validateCallbackUrlSyntax('http://10.0.0.1/').hostname).to.equal('10.0.0.1');
  });

  it('refuses private literals and localhost at submit time when asked, without DNS', () => {
    for (const url of ['http://10.0.0.1/', 'http://[::1]:8080/', 'http://localhost/']) {
      expect(() => validateCallbackUrlSyntax(url, { allowPrivateAddresses: false }), url)
        .to.throw(CallbackUrlRejected)
        .with.property('reason', 'private-address');
    }
    expect(validateCallbackUrlSyntax('http://internal.example.com/', { allowPrivateAddresses: false }).hostname).to.equal('internal.example.com');
    expect(validateCallbackUrlSyntax('http://10.0.0.1/', { allowPrivateAddresses: true }).hostname).to.equal('10.0.0.1');
  });
});

describe('blockedRangeOf', () => {
  it('judges a scoped address without its zone id', () => {
    expect(blockedRangeOf('fe80::1%eth0')).to.match(/link-local/);
  });

  it('treats anything that is not an IP address as blocked', () => {
    for (const garbage of ['', 'example.com', '999.1.1.1', '::g']) expect(blockedRangeOf(garbage), garbage).to.equal('not an IP address');
  });

  it('passes public addresses', () => {
    for (const address of ['1.1.1.1', '93.184.215.14', '2606:4700:4700::1111', '::ffff:1.1.1.1', '64:ff9b::808:808']) {
      expect(blockedRangeOf(address), address).to.equal(undefined);
    }
  });
});
