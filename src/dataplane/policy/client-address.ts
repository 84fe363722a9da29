/**
 * The client address policies see. From an untrusted peer (trusted hops 0, the default) it is the TCP peer and
 * nothing the client sends changes it. Behind N trusted proxies it is the N-th X-Forwarded-For entry from the
 * right: each trusted hop appended the address it saw, so that entry was written by the outermost trusted proxy.
 * Entries left of it are client-controlled and never used.
 */
import type ipaddr from 'ipaddr.js';
import { parseAddress } from '../../table/ip-rules.ts';

export interface ClientAddress {
  /** Canonical text (IPv4-mapped IPv6 as IPv4): rate-limit keys and logs. */
  text: string;
  /** Parsed, for CIDR checks; undefined when the chosen entry is not an IP address. */
  addr: ipaddr.IPv4 | ipaddr.IPv6 | undefined;
}

export function clientAddress(
  peer: string | undefined,
  forwardedFor: string | string[] | undefined,
  trustedHops: number,
): ClientAddress {
  let chosen = peer ?? '';
  if (trustedHops > 0 && forwardedFor !== undefined) {
    const list = (Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor)
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
    if (list.length > 0) chosen = list[Math.max(0, list.length - trustedHops)]!;
  }
  const addr = parseAddress(chosen);
  return { text: addr ? addr.toString() : chosen, addr };
}
