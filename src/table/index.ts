/**
 * The hot-path index over a TableData: host lookup (exact, then wildcard suffixes longest first, then `*`), and
 * per host an exact-path map, a prefix map probed at each `/` boundary from the longest prefix down, and a regex
 * list. Built once per table version; read-only afterwards.
 *
 * Precedence (HTTPRoute's): a more specific host wins; within a host, Exact path, then the longest PathPrefix,
 * then RegularExpression; ties by method match, more header matches, more query matches, older route, then
 * namespace/name and rule order. compile/ sorts each host's entries by that key; this index keeps their order.
 */
import { compileRouteRegex } from '../api/linear-regex.ts';
import type { ClusterData, EntryData, TableData } from './types.ts';

export interface CompiledEntry {
  readonly data: EntryData;
  readonly method: string | undefined;
  readonly headers: { name: string; exact?: string; regex?: RegExp }[];
  readonly query: { name: string; exact?: string; regex?: RegExp }[];
  /** Cookie matches (names case-sensitive); empty for most entries. */
  readonly cookies: { name: string; exact?: string; regex?: RegExp }[];
  /** Length of the normalized prefix (PathPrefix only), for ReplacePrefixMatch. */
  readonly prefixLength: number;
  /** The path regex, kept only for a ReplaceRegexMatch rewrite or redirect (its capture groups). */
  readonly pathRegex?: RegExp;
  readonly unconditional: boolean;
  /** EntryData.addresses: the local addresses this entry is served on; undefined: every address. */
  readonly addresses: ReadonlySet<string> | undefined;
}

interface RegexEntry {
  re: RegExp;
  entry: CompiledEntry;
  /** Position in the host's precedence order: merges the two regex lists back into that order. */
  order: number;
}

interface HostIndex {
  exact: Map<string, CompiledEntry[]>;
  prefix: Map<string, CompiledEntry[]>;
  /** prefixLengths[n] is 1 when some prefix of this host has n characters: probes of other lengths are skipped. */
  prefixLengths: Uint8Array;
  /** Regexes whose first path segment is a literal (`/orders/[0-9]+`), by that segment (`orders`). */
  regexBySegment: Map<string, RegexEntry[]>;
  /** Every other regex: tried for every path. */
  regex: RegexEntry[];
}

export type HeaderGetter = (name: string) => string | undefined;

/** Strip the port and a trailing dot, lower-case: the key hosts are indexed by. */
export function normalizeHost(host: string | undefined): string {
  if (!host) return '';
  let h = host;
  if (h.charCodeAt(0) === 91 /* [ */) {
    const end = h.indexOf(']');
    h = end > 0 ? h.slice(0, end + 1) : h;
  } else {
    const colon = h.indexOf(':');
    if (colon >= 0) h = h.slice(0, colon);
  }
  if (h.endsWith('.')) h = h.slice(0, -1);
  return h.toLowerCase();
}

/** `/a/b/` → `/a/b`; `/` stays. The form PathPrefix values are compared in. */
export function normalizePrefix(value: string): string {
  let v = value;
  while (v.length > 1 && v.endsWith('/')) v = v.slice(0, -1);
  return v;
}

function compileEntry(data: EntryData): CompiledEntry {
  const strMatch = (m: { type: string; name: string; value: string }) =>
    m.type === 'RegularExpression'
      ? { name: m.name.toLowerCase(), regex: compileRouteRegex(m.value) }
      : { name: m.name.toLowerCase(), exact: m.value };
  const headers = data.matchData.headers.map(strMatch);
  // Query parameter names are case-sensitive (Gateway API); keep their case.
  const query = data.matchData.queryParams.map((m) => ({ ...strMatch(m), name: m.name }));
  const cookies = (data.matchData.cookies ?? []).map((m) => ({ ...strMatch(m), name: m.name }));
  const method = data.matchData.method;
  const regexRewrite =
    data.rewrite?.path?.type === 'ReplaceRegexMatch' || data.redirect?.path?.type === 'ReplaceRegexMatch';
  return {
    ...(regexRewrite && data.matchData.path.type === 'RegularExpression'
      ? { pathRegex: compileRouteRegex(data.matchData.path.value) }
      : {}),
    data,
    method,
    headers,
    query,
    prefixLength:
      data.matchData.path.type === 'PathPrefix' ? normalizePrefix(data.matchData.path.value).length : 0,
    cookies,
    unconditional:
      headers.length === 0 &&
      query.length === 0 &&
      cookies.length === 0 &&
      method === undefined &&
      data.addresses === undefined,
    addresses: data.addresses ? new Set(data.addresses) : undefined,
  };
}

/** Characters that stand for themselves in a regex outside a class (no escapes, no metacharacters). */
const LITERAL = /[A-Za-z0-9/_~%!&',;=@-]/;

/**
 * The first path segment every match of an anchored path regex must have, when the regex fixes it literally:
 * `/orders/[0-9]+` → `orders`, `/health` → `health`; undefined when it does not (`/ord.*`, `/a?/x`, `(/a|/b)`,
 * or any alternation, which could bypass the literal start). Conservative: undefined only costs speed.
 */
export function literalFirstSegment(source: string): string | undefined {
  if (source.includes('|') || source.charCodeAt(0) !== 47 /* / */) return undefined;
  let end = 1;
  while (end < source.length && LITERAL.test(source[end]!)) end++;
  // A quantifier after the literal run makes its last character optional or repeatable: drop it.
  const next = source[end];
  if (next === '*' || next === '+' || next === '?' || next === '{') end--;
  const literal = source.slice(0, end);
  const slash = literal.indexOf('/', 1);
  if (slash > 1) return literal.slice(1, slash);
  // The whole regex is literal (`/health`): the path equals it.
  if (end === source.length && end > 1) return literal.slice(1);
  return undefined;
}

/** First segment of a normalized path, without its slash: `/orders/42` → `orders`, `/` → ``. */
function firstSegment(path: string): string {
  const slash = path.indexOf('/', 1);
  return slash < 0 ? path.slice(1) : path.slice(1, slash);
}

function buildHost(entries: CompiledEntry[]): HostIndex {
  const index: HostIndex = {
    exact: new Map(),
    prefix: new Map(),
    prefixLengths: new Uint8Array(0),
    regexBySegment: new Map(),
    regex: [],
  };
  entries.forEach((e, order) => {
    const p = e.data.matchData.path;
    if (p.type === 'Exact') push(index.exact, p.value, e);
    else if (p.type === 'PathPrefix') push(index.prefix, normalizePrefix(p.value), e);
    else {
      const r: RegexEntry = { re: compileRouteRegex(p.value), entry: e, order };
      const segment = literalFirstSegment(p.value);
      if (segment === undefined) index.regex.push(r);
      else push(index.regexBySegment, segment, r);
    }
  });
  let longest = 0;
  for (const key of index.prefix.keys()) longest = Math.max(longest, key.length);
  index.prefixLengths = new Uint8Array(longest + 1);
  for (const key of index.prefix.keys()) index.prefixLengths[key.length] = 1;
  return index;
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V) {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

function stringMatches(m: { exact?: string; regex?: RegExp }, value: string | undefined): boolean {
  if (value === undefined) return false;
  return m.exact !== undefined ? m.exact === value : m.regex!.test(value);
}

/** First value of a query parameter in a raw query string (without `?`), decoded; undefined when absent. */
export function queryParam(rawQuery: string, name: string): string | undefined {
  for (const part of rawQuery.split('&')) {
    const eq = part.indexOf('=');
    const key = eq < 0 ? part : part.slice(0, eq);
    let decodedKey: string;
    try {
      decodedKey = decodeURIComponent(key.replaceAll('+', ' '));
    } catch {
      continue;
    }
    if (decodedKey !== name) continue;
    const raw = eq < 0 ? '' : part.slice(eq + 1);
    try {
      return decodeURIComponent(raw.replaceAll('+', ' '));
    } catch {
      return raw;
    }
  }
  return undefined;
}

export interface RequestFacts {
  host: string;
  path: string;
  method: string;
  rawQuery: string;
  header: HeaderGetter;
  /** The local address the request arrived on; given only when the table has address-scoped entries (`scoped`). */
  localAddress?: string | undefined;
}

function conditionsHold(e: CompiledEntry, req: RequestFacts): boolean {
  if (e.unconditional) return true;
  if (e.addresses !== undefined && (req.localAddress === undefined || !e.addresses.has(req.localAddress)))
    return false;
  if (e.method !== undefined && e.method !== req.method) return false;
  for (const h of e.headers) if (!stringMatches(h, req.header(h.name))) return false;
  for (const q of e.query) if (!stringMatches(q, queryParam(req.rawQuery, q.name))) return false;
  if (e.cookies.length > 0) {
    const header = req.header('cookie');
    for (const c of e.cookies) if (!stringMatches(c, cookieOf(header, c.name))) return false;
  }
  return true;
}

/** The first value of one cookie in a Cookie header (`a=1; b=2`), without parsing all of them. */
export function cookieOf(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  let i = 0;
  while (i < header.length) {
    let end = header.indexOf(';', i);
    if (end < 0) end = header.length;
    const eq = header.indexOf('=', i);
    if (eq > 0 && eq < end && header.slice(i, eq).trim() === name) {
      const v = header.slice(eq + 1, end).trim();
      return v.length >= 2 && v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1) : v;
    }
    i = end + 1;
  }
  return undefined;
}

function firstHolding(list: CompiledEntry[] | undefined, req: RequestFacts): CompiledEntry | undefined {
  if (list === undefined) return undefined;
  for (const e of list) if (conditionsHold(e, req)) return e;
  return undefined;
}

function matchHost(index: HostIndex, req: RequestFacts): CompiledEntry | undefined {
  const path = req.path;
  const exact = firstHolding(index.exact.get(path), req);
  if (exact) return exact;
  if (index.prefix.size > 0) {
    let end = path.length;
    while (end > 1 && path.charCodeAt(end - 1) === 47) end--;
    const lengths = index.prefixLengths;
    for (;;) {
      // Slicing and hashing a candidate costs more than the match: only probe lengths some prefix has.
      if (end < lengths.length && lengths[end] === 1) {
        const hit = firstHolding(index.prefix.get(end === path.length ? path : path.slice(0, end)), req);
        if (hit) return hit;
      }
      if (end <= 1) break;
      end = path.lastIndexOf('/', end - 1);
      if (end <= 0) {
        const root = firstHolding(index.prefix.get('/'), req);
        if (root) return root;
        break;
      }
    }
  }
  return matchRegex(index, req);
}

/** The first regex entry in precedence order among the general list and the path's first-segment list. */
function matchRegex(index: HostIndex, req: RequestFacts): CompiledEntry | undefined {
  const path = req.path;
  const general = index.regex;
  const bySegment = index.regexBySegment.size > 0 ? index.regexBySegment.get(firstSegment(path)) : undefined;
  if (bySegment === undefined) {
    for (const r of general) if (r.re.test(path) && conditionsHold(r.entry, req)) return r.entry;
    return undefined;
  }
  let i = 0;
  let j = 0;
  while (i < general.length || j < bySegment.length) {
    const r =
      j >= bySegment.length || (i < general.length && general[i]!.order < bySegment[j]!.order)
        ? general[i++]!
        : bySegment[j++]!;
    if (r.re.test(path) && conditionsHold(r.entry, req)) return r.entry;
  }
  return undefined;
}

export class RoutingTable {
  readonly version: number;
  readonly hash: string;
  readonly data: TableData;
  readonly clusters: Map<string, ClusterData>;
  readonly #exactHosts = new Map<string, HostIndex>();
  /** Wildcard suffix (`.example.com`) → index. */
  readonly #wildcardHosts = new Map<string, HostIndex>();
  readonly #anyHost: HostIndex | undefined;
  readonly #hasWildcards: boolean;
  /** Some entry is served on some local addresses only: the proxy passes RequestFacts.localAddress. */
  readonly scoped: boolean;

  constructor(data: TableData) {
    this.version = data.version;
    this.hash = data.hash;
    this.data = data;
    this.clusters = new Map(data.clusters.map((c) => [c.id, c]));
    const compiled = data.entries.map(compileEntry);
    this.scoped = compiled.some((e) => e.addresses !== undefined);
    let any: HostIndex | undefined;
    for (const h of data.hosts) {
      const index = buildHost(h.entries.map((i) => compiled[i]!));
      if (h.host === '*') any = index;
      else if (h.host.startsWith('*.')) this.#wildcardHosts.set(h.host.slice(1), index);
      else this.#exactHosts.set(h.host, index);
    }
    this.#anyHost = any;
    this.#hasWildcards = this.#wildcardHosts.size > 0;
  }

  /** The entry that serves this request, or undefined (404). `host` must already be normalized. */
  match(req: RequestFacts): CompiledEntry | undefined {
    const host = req.host;
    const exact = this.#exactHosts.get(host);
    if (exact) {
      const hit = matchHost(exact, req);
      if (hit) return hit;
    }
    if (this.#hasWildcards) {
      // Longest suffix first: for a.b.example.com try .b.example.com, then .example.com, then .com.
      let dot = host.indexOf('.');
      while (dot >= 0) {
        const index = this.#wildcardHosts.get(host.slice(dot));
        if (index) {
          const hit = matchHost(index, req);
          if (hit) return hit;
        }
        dot = host.indexOf('.', dot + 1);
      }
    }
    return this.#anyHost ? matchHost(this.#anyHost, req) : undefined;
  }
}
