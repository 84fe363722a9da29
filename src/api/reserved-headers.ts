/**
 * Header names a route may not edit, shared by validation (a route that names one is refused, naming the field)
 * and the data plane (which never lets an edit through, should a table ever carry one).
 *
 * - Hop-by-hop headers (RFC 9110 §7.6.1) describe one connection: the gateway drops them both ways, and putting one
 *   back would change the framing or the protocol of the next hop (`transfer-encoding`, `upgrade`, `connection`).
 * - Headers the gateway writes itself on the way to the upstream (Host, the forwarded set, the request id): a route
 *   edit would send a second copy beside the gateway's, which upstreams read differently (first or last wins) and
 *   which the HTTP client refuses for Host — and that refusal must never be blamed on the endpoint.
 * - `content-length` on either side: the gateway frames messages; a route cannot.
 */
export const HOP_BY_HOP_HEADERS: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Request headers the gateway sets itself; a client's copies are dropped. */
export const GATEWAY_REQUEST_HEADERS: ReadonlySet<string> = new Set([
  'host',
  'expect',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-request-id',
  'forwarded',
  'x-real-ip',
]);

/**
 * A test equal to `set.has(name)` that compares the name with the members of its length instead of hashing it: the
 * data path asks this of every field of every message, and a set lookup with a string just parsed (not
 * internalized) costs a string-table lookup and a hash first, several times the comparisons.
 */
function memberTest(set: ReadonlySet<string>): (name: string) => boolean {
  const byLength: string[][] = [];
  for (const n of set) {
    byLength[n.length] ??= [];
    byLength[n.length]!.push(n);
  }
  return (name) => byLength[name.length]?.includes(name) === true;
}

/** `HOP_BY_HOP_HEADERS.has(name)` for a lower-case name (memberTest). */
export const isHopByHop = memberTest(HOP_BY_HOP_HEADERS);

/** `GATEWAY_REQUEST_HEADERS.has(name)` for a lower-case name (memberTest). */
export const isGatewayRequestHeader = memberTest(GATEWAY_REQUEST_HEADERS);

/** Why a RequestHeaderModifier may not name `name` (lower-case), or undefined when it may. */
export function reservedRequestHeader(name: string): string | undefined {
  if (HOP_BY_HOP_HEADERS.has(name)) return 'a hop-by-hop header';
  if (name === 'host')
    return 'set by the gateway (use urlRewrite.hostname to change the Host an upstream sees)';
  if (GATEWAY_REQUEST_HEADERS.has(name) || name.startsWith('x-edgegate-')) return 'set by the gateway';
  if (name === 'content-length') return 'the gateway frames the request';
  return undefined;
}

/** Why a ResponseHeaderModifier may not name `name` (lower-case), or undefined when it may. */
export function reservedResponseHeader(name: string): string | undefined {
  if (HOP_BY_HOP_HEADERS.has(name)) return 'a hop-by-hop header';
  if (name === 'content-length') return 'the gateway frames the response';
  return undefined;
}
