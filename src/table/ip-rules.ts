/**
 * IP allow / deny lists. Addresses and CIDRs are parsed strictly (net.isIP: no `127.1`, `0x7f000001` or
 * leading-zero forms), and IPv4-mapped IPv6 (`::ffff:10.1.2.3`, `::ffff:a01:203`) is turned into plain IPv4 on
 * both sides, so a deny of `10.0.0.0/8` also holds for a client reaching a dual-stack listener or written that
 * way in X-Forwarded-For.
 */
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

type Addr = ipaddr.IPv4 | ipaddr.IPv6;

/** A parsed address in canonical form: IPv4-mapped IPv6 becomes IPv4; a zone id is dropped. */
export function parseAddress(text: string): Addr | undefined {
  let t = text.trim();
  if (t.startsWith('[') && t.endsWith(']')) t = t.slice(1, -1);
  const zone = t.indexOf('%');
  if (zone >= 0) t = t.slice(0, zone);
  if (isIP(t) === 0) return undefined;
  const a = ipaddr.parse(t);
  return a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress()
    ? (a as ipaddr.IPv6).toIPv4Address()
    : a;
}

/** `10.0.0.0/8`, `2001:db8::/32`, a bare address (/32 or /128). Mapped IPv6 prefixes ≥ /96 become IPv4. */
export function parseCidr(text: string): { cidr: [Addr, number]; canonical: string } | { error: string } {
  const slash = text.indexOf('/');
  const addrText = slash < 0 ? text : text.slice(0, slash);
  const a = parseAddress(addrText);
  if (!a || addrText.trim() !== addrText || addrText.startsWith('['))
    return { error: `invalid IP address ${JSON.stringify(addrText)}` };
  const mappedV6 = a.kind() === 'ipv4' && addrText.includes(':');
  const max = a.kind() === 'ipv4' && !mappedV6 ? 32 : 128;
  let bits = max;
  if (slash >= 0) {
    const b = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(b) || Number(b) > max)
      return { error: `invalid prefix length ${JSON.stringify(b)} in ${JSON.stringify(text)} (0-${max})` };
    bits = Number(b);
  }
  if (mappedV6) {
    if (bits < 96)
      return {
        error: `${text}: an IPv4-mapped IPv6 prefix must be /96 or longer (write the IPv4 CIDR instead)`,
      };
    bits -= 96;
  }
  // Canonical network address: the host bits cleared.
  const bytes = a.toByteArray();
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, bits - i * 8));
    bytes[i] = bytes[i]! & ((0xff << (8 - keep)) & 0xff);
  }
  const net = ipaddr.fromByteArray(bytes);
  return { cidr: [net, bits], canonical: `${net.toString()}/${bits}` };
}

/** A list of CIDRs, matched against canonical addresses. */
export class IpMatcher {
  readonly #v4: [Addr, number][] = [];
  readonly #v6: [Addr, number][] = [];
  readonly size: number;

  constructor(cidrs: readonly string[]) {
    for (const c of cidrs) {
      const p = parseCidr(c);
      if ('error' in p) throw new Error(p.error);
      (p.cidr[0].kind() === 'ipv4' ? this.#v4 : this.#v6).push(p.cidr);
    }
    this.size = this.#v4.length + this.#v6.length;
  }

  matches(addr: Addr | undefined): boolean {
    if (!addr) return false;
    const list = addr.kind() === 'ipv4' ? this.#v4 : this.#v6;
    for (const c of list) if (addr.match(c)) return true;
    return false;
  }
}

/**
 * Deny wins over allow; an allow list that is not empty must match. An address that cannot be parsed only passes
 * when no allow list applies (and is never on a deny list).
 */
export function checkIp(
  addr: Addr | undefined,
  allow: IpMatcher | undefined,
  deny: IpMatcher | undefined,
): 'denied' | 'not-allowed' | undefined {
  if (deny?.matches(addr)) return 'denied';
  if (allow && allow.size > 0 && !allow.matches(addr)) return 'not-allowed';
  return undefined;
}
