/**
 * Header hygiene between client and upstream: hop-by-hop headers (RFC 9110 §7.6.1) and every header a
 * `Connection` header names are removed; forwarded headers the gateway owns are rebuilt after that removal, so
 * `Connection: close, X-Forwarded-For` cannot strip them. Which names are which: src/api/reserved-headers.ts (the
 * same sets route validation uses; asked per field through its member tests, isHopByHop and isGatewayRequestHeader).
 */
import type { IncomingHttpHeaders } from 'node:http';
import {
  isGatewayRequestHeader,
  isHopByHop,
  reservedRequestHeader,
  reservedResponseHeader,
} from '../../api/reserved-headers.ts';
import type { HeaderEdits } from '../../table/types.ts';

/** Prefix of the headers the gateway sets upstream itself (`x-edgegate-attempt`); stripped from clients. */
export const GATEWAY_PREFIX = 'x-edgegate-';

/** Names listed in Connection header values (lower-case), excluding the hop-by-hop keywords themselves. */
export function connectionTokens(values: string | string[] | undefined): Set<string> | undefined {
  if (values === undefined) return undefined;
  const list = Array.isArray(values) ? values : [values];
  let out: Set<string> | undefined;
  for (const v of list) {
    for (const raw of v.split(',')) {
      const t = raw.trim().toLowerCase();
      if (t === '' || t === 'close' || t === 'keep-alive') continue;
      if (!out) out = new Set();
      out.add(t);
    }
  }
  return out;
}

/** llhttp's flat `[name, value, …]` list → undici's object form: lower-case names, a repeated field as an array. */
export function headerObject(raw: readonly string[]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const value = raw[i + 1]!;
    const prior = out[name];
    if (prior === undefined) out[name] = value;
    else if (typeof prior === 'string') out[name] = [prior, value];
    else prior.push(value);
  }
  return out;
}

/** The names every Connection field of a flat `[name, value, …]` list lists (connectionTokens of each). */
function connectionNamed(raw: readonly string[]): Set<string> | undefined {
  let named: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === 10 && raw[i]!.toLowerCase() === 'connection') {
      const t = connectionTokens(raw[i + 1]);
      if (t) {
        named ??= new Set();
        for (const x of t) named.add(x);
      }
    }
  }
  return named;
}

export interface ForwardedFacts {
  /** Host header value the upstream should see. */
  host: string;
  clientAddress: string;
  proto: 'http' | 'https';
  originalHost: string;
  requestId: string;
  /** X-Forwarded-For received from a trusted peer, to be extended; undefined from an untrusted one. */
  priorForwardedFor: string | undefined;
}

/**
 * Builds the upstream request headers as a flat [name, value, …] list from the client's raw headers.
 */
export function upstreamRequestHeaders(
  rawHeaders: string[],
  facts: ForwardedFacts,
  edits: HeaderEdits | undefined,
): string[] {
  const named = connectionNamed(rawHeaders);
  const out: string[] = [];
  let cookies = 0;
  let cookie = '';
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    // HTTP/2 pseudo-headers (:method, :path, :authority, :scheme) are not headers to forward.
    if (name.charCodeAt(0) === 58) continue;
    const lower = name.toLowerCase();
    if (isHopByHop(lower) || isGatewayRequestHeader(lower)) continue;
    // `x-edgegate-*` are the gateway's own (x-edgegate-attempt on retries): never a client's copy.
    if (lower.startsWith(GATEWAY_PREFIX)) continue;
    if (named?.has(lower)) continue;
    if (edits && (edits.remove.includes(lower) || edits.set.some((s) => s[0] === lower))) continue;
    if (lower === 'cookie') {
      // HTTP/2 splits cookies into several fields; an HTTP/1.1 upstream must get one, joined with "; "
      // (RFC 9113 §8.2.3), the same value routes matched on (Node joins req.headers.cookie so).
      cookie = cookies++ === 0 ? rawHeaders[i + 1]! : `${cookie}; ${rawHeaders[i + 1]!}`;
      continue;
    }
    out.push(name, rawHeaders[i + 1]!);
  }
  if (cookies > 0) out.push('cookie', cookie);
  out.push('host', facts.host);
  out.push(
    'x-forwarded-for',
    facts.priorForwardedFor ? `${facts.priorForwardedFor}, ${facts.clientAddress}` : facts.clientAddress,
  );
  out.push('x-forwarded-proto', facts.proto);
  out.push('x-forwarded-host', facts.originalHost);
  out.push('x-request-id', facts.requestId);
  if (edits) {
    // Validation refuses edits of reserved names; a table that carries one anyway never gets it through.
    for (const [n, v] of edits.set) if (reservedRequestHeader(n) === undefined) out.push(n, v);
    for (const [n, v] of edits.add) if (reservedRequestHeader(n) === undefined) out.push(n, v);
  }
  return out;
}

/** Upstream response headers → client response headers: hop-by-hop removed, route edits applied. */
export function clientResponseHeaders(
  headers: IncomingHttpHeaders,
  edits: HeaderEdits | undefined,
  requestId: string,
): Record<string, string | string[]> {
  const named = connectionTokens(headers.connection);
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    if (isHopByHop(name) || named?.has(name)) continue;
    const v = headers[name];
    if (v !== undefined) out[name] = v;
  }
  if (edits) {
    for (const n of edits.remove) delete out[n];
    for (const [n, v] of edits.set) if (reservedResponseHeader(n) === undefined) out[n] = v;
    for (const [n, v] of edits.add) {
      if (reservedResponseHeader(n) !== undefined) continue;
      const prior = out[n];
      out[n] = prior === undefined ? v : Array.isArray(prior) ? [...prior, v] : [prior, v];
    }
  }
  out['x-request-id'] ??= requestId;
  return out;
}

/**
 * clientResponseHeaders for a route without response header edits, straight from llhttp's flat list: the same
 * fields (hop-by-hop ones and those a Connection field names left out, names lower-cased, X-Request-ID added when
 * the upstream sent none) as a flat `[name, value, …]` list in the upstream's order, with no object in between.
 */
export function clientResponseFields(raw: readonly string[], requestId: string): string[] {
  const named = connectionNamed(raw);
  const out: string[] = [];
  let hasId = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (isHopByHop(name) || named?.has(name)) continue;
    if (name.length === 12 && name === 'x-request-id') hasId = true;
    out.push(name, raw[i + 1]!);
  }
  if (!hasId) out.push('x-request-id', requestId);
  return out;
}

const REQUEST_ID = /^[\x21-\x7e]{1,200}$/;

export function acceptableRequestId(value: string | undefined): value is string {
  return value !== undefined && REQUEST_ID.test(value);
}
