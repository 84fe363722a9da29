/**
 * The client address policies see — IP rules, rate limits by client, external auth's X-Forwarded-For — and the
 * key of consistent hashing on the source IP: one function, so all of them agree.
 *
 * From an untrusted peer (trusted hops 0, the default) it is the TCP peer and nothing the client sends changes it.
 * Behind N trusted proxies it is the N-th X-Forwarded-For entry from the right: each trusted hop appended the
 * address it saw, so that entry was written by the outermost trusted proxy. Entries left of it are
 * client-controlled and never used.
 *
 * An entry is an IP address, optionally with a port as proxies write it (`10.1.2.3:5060`, `[2001:db8::1]:443`,
 * `[2001:db8::1]`): the port is dropped. An entry that is not an address (`unknown`, `10.1`, garbage) is never used
 * as a client address — it would match no deny list and make a fresh rate-limit bucket per spelling. In its place
 * comes the nearest trusted address: the next entry to its right that is an address (the trusted proxy that
 * passed it on), else the TCP peer. That is what nginx's realip module and Envoy's XFF detection do (both fall
 * back to the address they already trust); the entry is counted (`substituted`) so an operator sees a proxy that
 * writes garbage.
 */
import type ipaddr from 'ipaddr.js';
import { parseAddress } from '../../table/ip-rules.ts';

export interface ClientAddress {
  /** Canonical text (IPv4-mapped IPv6 as IPv4): rate-limit keys, hashing and logs. */
  text: string;
  /** Parsed, for CIDR checks; undefined only when the TCP peer itself is not an IP address (a Unix socket). */
  addr: ipaddr.IPv4 | ipaddr.IPv6 | undefined;
  /** The chosen X-Forwarded-For entry was not an address: a nearer trusted address was used instead. */
  substituted: boolean;
}

const V4_PORT = /^(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}$/;
const V6_BRACKETS = /^\[([0-9A-Fa-f:.]+(?:%[A-Za-z0-9_.-]+)?)\](?::\d{1,5})?$/;

/** An X-Forwarded-For entry as an address (`a.b.c.d`, `a.b.c.d:port`, IPv6, `[v6]`, `[v6]:port`), or undefined. */
export function parseForwardedEntry(entry: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  const plain = parseAddress(entry);
  if (plain) return plain;
  const v4 = V4_PORT.exec(entry);
  if (v4) return parseAddress(v4[1]!);
  const v6 = V6_BRACKETS.exec(entry);
  return v6 ? parseAddress(v6[1]!) : undefined;
}

export function clientAddress(
  peer: string | undefined,
  forwardedFor: string | string[] | undefined,
  trustedHops: number,
): ClientAddress {
  if (trustedHops > 0 && forwardedFor !== undefined) {
    const list = (Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor)
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
    for (let i = Math.max(0, list.length - trustedHops); i < list.length; i++) {
      const addr = parseForwardedEntry(list[i]!);
      if (addr)
        return { text: addr.toString(), addr, substituted: i !== Math.max(0, list.length - trustedHops) };
    }
    if (list.length > 0) return fromPeer(peer, true);
  }
  return fromPeer(peer, false);
}

function fromPeer(peer: string | undefined, substituted: boolean): ClientAddress {
  const text = peer ?? '';
  const addr = parseAddress(text);
  return { text: addr ? addr.toString() : text, addr, substituted };
}
