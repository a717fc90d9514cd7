import dns from 'node:dns';
import net from 'node:net';

/*
 * Which callback URLs we are willing to POST to.
 *
 * A callback URL is chosen by whoever submits a job, and the POST is made from
 * inside our network, so without a policy any client could make this service
 * probe or poke internal hosts (SSRF): the metadata endpoint at
 * 169.254.169.254, a database admin page on 10.x, the service itself on
 * 127.0.0.1. The policy has two layers:
 *
 * - syntax, checked at submit time without I/O (`validateCallbackUrlSyntax`):
 *   http or https only, no user:password, a real port, a sane length;
 * - destination, checked right before every delivery (`resolveCallbackTarget`):
 *   the host name is resolved and *every* address must be public. A name with
 *   one public and one private record is refused, because the connection may
 *   use either. The delivery then connects to exactly the addresses checked
 *   here (see `deliver.ts`), so a DNS answer that changes between the check and
 *   the connect (rebinding) cannot redirect it.
 *
 * `allowPrivateAddresses` (MEDIAJOBS_ALLOW_PRIVATE_CALLBACKS, on by default for
 * the embedded single-machine setup) switches the destination check off, for
 * receivers on the same machine or LAN. Syntax rules always apply.
 */

/** Why a callback URL was refused; stable strings, safe to store and branch on. */
export type CallbackUrlRejectReason =
  | 'invalid-url'
  | 'unsupported-scheme'
  | 'credentials'
  | 'invalid-port'
  | 'too-long'
  | 'private-address';

/**
 * Thrown when a callback URL breaks the policy. `reason` is for code; the
 * message is for people and names the URL's host and the offending address.
 *
 * Every reason except `private-address` is a property of the URL text alone,
 * so retrying the same URL cannot succeed (`permanent`). A private address may
 * stop being one when DNS changes, so the sender may keep retrying it.
 */
export class CallbackUrlRejected extends Error {
  readonly reason: CallbackUrlRejectReason;

  constructor(reason: CallbackUrlRejectReason, message: string) {
    super(message);
    this.name = 'CallbackUrlRejected';
    this.reason = reason;
  }

  get permanent(): boolean {
    return this.reason !== 'private-address';
  }
}

/** Longer URLs are refused at submit time; real receivers use far shorter ones. */
export const MAX_CALLBACK_URL_LENGTH = 2048;

/** One resolved address, as `dns.lookup(..., { all: true })` returns it. */
export interface ResolvedAddress {
  readonly address: string;
  readonly family: 4 | 6;
}

/** Resolves a host name to all of its addresses. Replaceable in tests. */
export type HostResolver = (hostname: string) => Promise<ResolvedAddress[]>;

/** The switch from `CallbackConfig`, plus a resolver seam for tests. */
export interface CallbackUrlPolicyOptions {
  readonly allowPrivateAddresses: boolean;
  /** Defaults to `dns.lookup` with `all: true` (the system resolver, /etc/hosts included). */
  readonly resolve?: HostResolver;
}

/** A checked callback URL and the addresses a delivery may connect to. */
export interface CallbackTarget {
  readonly url: URL;
  /** Never empty; every entry passed the address policy. */
  readonly addresses: readonly ResolvedAddress[];
}

/*
 * Address ranges a callback must not reach, from the IANA special-purpose
 * registries (RFC 6890 and successors). Anything not "globally reachable" is
 * here, not only RFC 1918, because each of them reaches something that is not
 * the public internet. IPv4-mapped (::ffff:a.b.c.d), SIIT (::ffff:0:a.b.c.d)
 * and NAT64 (64:ff9b::a.b.c.d) forms of the IPv4 ranges are added below, since
 * a dual-stack socket connecting to them reaches the embedded IPv4 address.
 */
const BLOCKED_IPV4: ReadonlyArray<readonly [string, number, string]> = [
  ['0.0.0.0', 8, 'unspecified ("this network"; 0.0.0.0 reaches localhost on Linux)'],
  ['10.0.0.0', 8, 'private (RFC 1918)'],
  ['100.64.0.0', 10, 'carrier-grade NAT (RFC 6598)'],
  ['127.0.0.0', 8, 'loopback'],
  ['169.254.0.0', 16, 'link-local (cloud metadata services live here)'],
  ['172.16.0.0', 12, 'private (RFC 1918)'],
  ['192.0.0.0', 24, 'IETF protocol assignments'],
  ['192.0.2.0', 24, 'documentation (TEST-NET-1)'],
  ['192.88.99.0', 24, '6to4 relay anycast'],
  ['192.168.0.0', 16, 'private (RFC 1918)'],
  ['198.18.0.0', 15, 'benchmarking'],
  ['198.51.100.0', 24, 'documentation (TEST-NET-2)'],
  ['203.0.113.0', 24, 'documentation (TEST-NET-3)'],
  ['224.0.0.0', 4, 'multicast'],
  ['240.0.0.0', 4, 'reserved (includes broadcast 255.255.255.255)'],
];

const BLOCKED_IPV6: ReadonlyArray<readonly [string, number, string]> = [
  ['::', 128, 'unspecified'],
  ['::1', 128, 'loopback'],
  ['::', 96, 'IPv4-compatible (deprecated)'],
  ['64:ff9b:1::', 48, 'local-use NAT64'],
  ['100::', 64, 'discard-only'],
  ['2001::', 23, 'IETF protocol assignments (Teredo, ORCHID, ...)'],
  ['2001:db8::', 32, 'documentation'],
  ['2002::', 16, '6to4 (embeds an IPv4 address we would have to trust)'],
  ['3fff::', 20, 'documentation'],
  ['5f00::', 16, 'segment routing (SRv6) SIDs'],
  ['fc00::', 7, 'unique-local'],
  ['fe80::', 10, 'link-local'],
  ['fec0::', 10, 'site-local (deprecated)'],
  ['ff00::', 8, 'multicast'],
];

/** IPv6 prefixes that embed an IPv4 address in their last 32 bits. */
const IPV4_EMBEDDING_PREFIXES: ReadonlyArray<readonly [string, string]> = [
  ['::ffff:', 'IPv4-mapped'],
  ['::ffff:0:', 'IPv4-translated'],
  ['64:ff9b::', 'NAT64'],
];

interface BlockedRange {
  readonly list: net.BlockList;
  readonly label: string;
}

/*
 * One BlockList per range rather than one for all: `check` only answers yes or
 * no, and the rejection message should say which range matched. Seventy-odd
 * lists of one rule each cost nothing next to a DNS lookup.
 */
const BLOCKED_RANGES: readonly BlockedRange[] = [
  ...BLOCKED_IPV4.map(([network, prefix, label]) => blockedRange(network, prefix, 'ipv4', `${label}, ${network}/${prefix}`)),
  ...BLOCKED_IPV4.flatMap(([network, prefix, label]) =>
    IPV4_EMBEDDING_PREFIXES.map(([v6prefix, form]) =>
      blockedRange(`${v6prefix}${network}`, 96 + prefix, 'ipv6', `${form} ${label}, ${v6prefix}${network}/${96 + prefix}`),
    ),
  ),
  ...BLOCKED_IPV6.map(([network, prefix, label]) => blockedRange(network, prefix, 'ipv6', `${label}, ${network}/${prefix}`)),
];

function blockedRange(network: string, prefix: number, type: 'ipv4' | 'ipv6', label: string): BlockedRange {
  const list = new net.BlockList();
  list.addSubnet(network, prefix, type);
  return { list, label };
}

/**
 * Names the blocked range `address` falls in, or returns undefined for a
 * public address. Anything that is not a well-formed IP address is treated as
 * blocked: `BlockList.check` answers false for garbage, and failing open would
 * let a malformed resolver answer through.
 */
export function blockedRangeOf(address: string): string | undefined {
  // A zone id (fe80::1%eth0) makes BlockList.check answer false; scoped
  // addresses are link-local anyway, so judge the address without it.
  const bare = address.includes('%') ? address.slice(0, address.indexOf('%')) : address;
  const version = net.isIP(bare);
  if (version === 0) return 'not an IP address';
  const type = version === 4 ? 'ipv4' : 'ipv6';
  return BLOCKED_RANGES.find((range) => range.list.check(bare, type))?.label;
}

/**
 * Submit-time check of a callback URL's text: no I/O, throws
 * `CallbackUrlRejected`, returns the parsed URL. The literal `no` (suppress
 * the queue's callback) is the caller's business and is refused here.
 *
 * With `{ allowPrivateAddresses: false }` it also refuses what can be refused
 * without DNS: `localhost` and IP literals in a blocked range, so an obviously
 * bad URL fails at submit time rather than at delivery.
 *
 * @example
 * validateCallbackUrlSyntax('https://hooks.example.com/ci?token=abc'); // URL
 * validateCallbackUrlSyntax('ftp://example.com/');                    // throws unsupported-scheme
 */
export function validateCallbackUrlSyntax(url: string, options?: { readonly allowPrivateAddresses: boolean }): URL {
  if (url.length > MAX_CALLBACK_URL_LENGTH) {
    throw new CallbackUrlRejected('too-long', `Callback URL is longer than ${MAX_CALLBACK_URL_LENGTH} characters.`);
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new CallbackUrlRejected('invalid-url', `Callback URL ${JSON.stringify(url)} is not an absolute URL.`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new CallbackUrlRejected('unsupported-scheme', `Callback URL scheme ${JSON.stringify(parsed.protocol.slice(0, -1))} is not allowed: use http or https.`);
  }
  if (parsed.username !== '' || parsed.password !== '') {
    throw new CallbackUrlRejected('credentials', 'Callback URL must not contain a user name or password; put a token in the path or query instead.');
  }
  // The WHATWG parser already refuses ports above 65535 and drops default
  // ports; port 0 is the one it lets through that no server listens on.
  if (parsed.port === '0') {
    throw new CallbackUrlRejected('invalid-port', 'Callback URL port 0 is not a valid destination.');
  }
  if (options !== undefined && !options.allowPrivateAddresses) {
    const host = hostOf(parsed);
    // RFC 6761: *.localhost is loopback whatever DNS says; refuse without asking.
    if (isLocalhostName(host)) throw privateHost(parsed, host, LOCALHOST_RANGE);
    if (net.isIP(host) !== 0) {
      const range = blockedRangeOf(host);
      if (range !== undefined) throw privateHost(parsed, host, range);
    }
  }
  return parsed;
}

/**
 * Checks a callback URL right before delivery: the syntax rules, then (unless
 * `allowPrivateAddresses`) every address its host resolves to. Returns the
 * parsed URL.
 *
 * Throws `CallbackUrlRejected` for a policy violation; a DNS failure
 * (ENOTFOUND, EAI_AGAIN) is rethrown as is, since it is not a verdict on the URL.
 */
export async function checkCallbackUrl(url: string, options: CallbackUrlPolicyOptions): Promise<URL> {
  return (await resolveCallbackTarget(url, options)).url;
}

/**
 * `checkCallbackUrl` that also returns the checked addresses, so the
 * connection can be pinned to them (`deliver.ts`). The addresses are resolved
 * even when private addresses are allowed, for the same reason.
 */
export async function resolveCallbackTarget(url: string, options: CallbackUrlPolicyOptions): Promise<CallbackTarget> {
  // Refuses localhost names and private IP literals before any DNS.
  const parsed = validateCallbackUrlSyntax(url, options);
  const host = hostOf(parsed);
  const version = net.isIP(host);
  if (version !== 0) return { url: parsed, addresses: [{ address: host, family: version === 4 ? 4 : 6 }] };

  const addresses = await (options.resolve ?? systemResolve)(host);
  if (addresses.length === 0) {
    throw Object.assign(new Error(`Callback host ${host} resolved to no addresses.`), { code: 'ENODATA' });
  }
  if (!options.allowPrivateAddresses) {
    for (const { address } of addresses) {
      const range = blockedRangeOf(address);
      if (range !== undefined) throw privateHost(parsed, address, range);
    }
  }
  return { url: parsed, addresses };
}

/** `URL.hostname` keeps IPv6 literals in brackets; DNS and BlockList want them bare. */
export function hostOf(url: URL): string {
  const host = url.hostname;
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

const LOCALHOST_RANGE = 'localhost names are loopback (RFC 6761)';

function isLocalhostName(host: string): boolean {
  const name = host.toLowerCase().replace(/\.$/, '');
  return name === 'localhost' || name.endsWith('.localhost');
}

function privateHost(url: URL, address: string, range: string): CallbackUrlRejected {
  const via = address === hostOf(url) ? '' : ` (${url.hostname} resolves to ${address})`;
  return new CallbackUrlRejected(
    'private-address',
    `Callback URL host ${url.hostname}${via} is not a public address: ${range}. ` +
      'Set MEDIAJOBS_ALLOW_PRIVATE_CALLBACKS=true to deliver to private networks.',
  );
}

async function systemResolve(hostname: string): Promise<ResolvedAddress[]> {
  // verbatim: keep the resolver's order instead of reordering IPv4 first; the
  // connection tries them in this order (happy eyeballs when several).
  const answers = await dns.promises.lookup(hostname, { all: true, verbatim: true });
  return answers.map(({ address, family }) => ({ address, family: family === 6 ? 6 : 4 }));
}
