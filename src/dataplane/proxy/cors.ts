/**
 * The CORS filter at request time (Gateway API HTTPCORSFilter semantics): a preflight (OPTIONS with Origin and
 * Access-Control-Request-Method) is answered 204 by the gateway and never reaches the upstream; an actual
 * response gets Access-Control-Allow-Origin (and credentials / expose headers) when its Origin is allowed, and no
 * CORS header at all when it is not. On a CORS route the gateway owns the Access-Control-* response headers: the
 * upstream's are removed. `Vary: Origin` is added whenever the answer depends on the Origin.
 *
 * Nothing a client sends is reflected unless it passed a strict check: an Origin must be a serialized origin
 * (`scheme://host[:port]`, at most 512 characters), a requested method a token, requested headers a short list of
 * tokens. A `null` or malformed Origin is never allowed, except by `*` without credentials (answered `*`).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CorsData } from '../../table/types.ts';

/** Worker-wide CORS counters (edgegate_cors_preflights_total{result}). */
export const corsCounters = { preflightsAllowed: 0, preflightsRefused: 0 };

const MAX_ORIGIN = 512;
/** A serialized http(s) origin: scheme, host (name, IPv4 or [IPv6]), optional port; lower-cased first. */
const HTTP_ORIGIN =
  /^(https?):\/\/([a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?|\[[0-9a-f:.]{2,45}\])(?::([0-9]{1,5}))?$/;
/** Any serialized origin (other schemes too, e.g. an extension's), for echoing under `*` with credentials. */
const ANY_ORIGIN = /^[a-z][a-z0-9+.-]{0,31}:\/\/[a-z0-9.\-[\]:]{1,300}$/;
const TOKEN = /^[A-Za-z0-9!#$%&'*+\-.^_`|~]{1,64}$/;
const MAX_REQUEST_HEADERS = 64;

interface OriginPattern {
  scheme: string;
  /** Exact host, or undefined with `suffix`/`any`. */
  host: string | undefined;
  /** `.example.com` for `*.example.com`. */
  suffix: string | undefined;
  any: boolean;
  port: number;
}

function defaultPort(scheme: string): number {
  return scheme === 'https' ? 443 : 80;
}

function parsePattern(p: string): OriginPattern | undefined {
  const m = /^(https?):\/\/(.+?)(?::([0-9]{1,5}))?$/.exec(p);
  if (!m) return undefined;
  const scheme = m[1]!;
  const host = m[2]!;
  const port = m[3] !== undefined ? Number(m[3]) : defaultPort(scheme);
  if (host === '*') return { scheme, host: undefined, suffix: undefined, any: true, port };
  if (host.startsWith('*.')) return { scheme, host: undefined, suffix: host.slice(1), any: false, port };
  return { scheme, host, suffix: undefined, any: false, port };
}

export class CorsPolicy {
  readonly #anyOrigin: boolean;
  readonly #patterns: OriginPattern[];
  readonly #credentials: boolean;
  readonly #methods: string | undefined;
  readonly #anyMethod: boolean;
  readonly #headers: string | undefined;
  readonly #anyHeader: boolean;
  readonly #expose: string | undefined;
  readonly #maxAge: string;
  /** Every answer is the same whatever the Origin (`*` without credentials): no Vary needed. */
  readonly #constant: boolean;

  constructor(data: CorsData) {
    this.#anyOrigin = data.allowOrigins.includes('*');
    this.#patterns = data.allowOrigins.map(parsePattern).filter((p) => p !== undefined);
    this.#credentials = data.allowCredentials;
    this.#anyMethod = data.allowMethods.includes('*');
    this.#methods =
      data.allowMethods.length > 0 && !this.#anyMethod ? data.allowMethods.join(', ') : undefined;
    this.#anyHeader = data.allowHeaders.includes('*');
    this.#headers =
      data.allowHeaders.length > 0 && !this.#anyHeader ? data.allowHeaders.join(', ') : undefined;
    const exposeAll = data.exposeHeaders.includes('*');
    // `*` cannot expose headers with credentials (Fetch treats it as a literal name then): the others still go.
    const expose =
      exposeAll && this.#credentials ? data.exposeHeaders.filter((h) => h !== '*') : data.exposeHeaders;
    this.#expose = exposeAll && !this.#credentials ? '*' : expose.length > 0 ? expose.join(', ') : undefined;
    this.#maxAge = String(data.maxAge);
    this.#constant = this.#anyOrigin && !this.#credentials;
  }

  /**
   * The Access-Control-Allow-Origin value for this Origin header, or undefined when it is not allowed (also for
   * a missing, repeated, oversized or malformed one).
   */
  allowedOrigin(origin: string | string[] | undefined): string | undefined {
    if (typeof origin !== 'string' || origin.length === 0 || origin.length > MAX_ORIGIN) return undefined;
    if (this.#constant) return '*';
    const lower = origin.toLowerCase();
    if (this.#anyOrigin) return ANY_ORIGIN.test(lower) ? lower : undefined;
    const m = HTTP_ORIGIN.exec(lower);
    if (!m) return undefined;
    const scheme = m[1]!;
    const host = m[2]!;
    const port = m[3] !== undefined ? Number(m[3]) : defaultPort(scheme);
    for (const p of this.#patterns) {
      if (p.scheme !== scheme || p.port !== port) continue;
      if (p.any || p.host === host) return lower;
      if (p.suffix !== undefined && host.length > p.suffix.length && host.endsWith(p.suffix)) return lower;
    }
    return undefined;
  }

  /**
   * Answers a preflight and returns true; false when the request is no preflight (it is then forwarded). Origin
   * not allowed: 204 without CORS headers (the browser then refuses the actual request).
   */
  preflight(req: IncomingMessage, res: ServerResponse, requestId: string): boolean {
    const h = req.headers;
    const method = h['access-control-request-method'];
    if (h.origin === undefined || method === undefined) return false;
    // No Content-Length: a 204 must not carry one (RFC 9110 §8.6).
    const headers: Record<string, string> = { 'x-request-id': requestId };
    if (!this.#constant)
      headers.vary = 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers';
    const origin = this.allowedOrigin(h.origin);
    if (origin === undefined) {
      corsCounters.preflightsRefused++;
      res.writeHead(204, headers);
      res.end();
      return true;
    }
    corsCounters.preflightsAllowed++;
    headers['access-control-allow-origin'] = origin;
    if (this.#credentials) headers['access-control-allow-credentials'] = 'true';
    if (this.#methods !== undefined) headers['access-control-allow-methods'] = this.#methods;
    else if (this.#anyMethod) {
      if (!this.#credentials) headers['access-control-allow-methods'] = '*';
      else if (typeof method === 'string' && TOKEN.test(method))
        headers['access-control-allow-methods'] = method;
    }
    if (this.#headers !== undefined) headers['access-control-allow-headers'] = this.#headers;
    else if (this.#anyHeader) {
      if (!this.#credentials) headers['access-control-allow-headers'] = '*';
      else {
        const echoed = requestedHeaders(h['access-control-request-headers']);
        if (echoed !== undefined) headers['access-control-allow-headers'] = echoed;
      }
    }
    headers['access-control-max-age'] = this.#maxAge;
    res.writeHead(204, headers);
    res.end();
    return true;
  }

  /**
   * Before an actual request is handled: the CORS headers go on the response object itself, so that every answer,
   * the gateway's own too (a policy's 401 or 429, a 502, a 504), can be read by the page that asked.
   */
  preset(res: ServerResponse, origin: string | string[] | undefined): void {
    if (!this.#constant) res.setHeader('vary', 'Origin');
    const allowed = this.allowedOrigin(origin);
    if (allowed === undefined) return;
    res.setHeader('access-control-allow-origin', allowed);
    if (this.#credentials) res.setHeader('access-control-allow-credentials', 'true');
    if (this.#expose !== undefined) res.setHeader('access-control-expose-headers', this.#expose);
  }

  /** Response headers of an actual request (upstream answer already converted): CORS headers set or removed. */
  decorate(out: Record<string, string | string[]>, origin: string | string[] | undefined): void {
    for (const name in out) if (name.startsWith('access-control-')) delete out[name];
    if (!this.#constant) appendVary(out, 'Origin');
    const allowed = this.allowedOrigin(origin);
    if (allowed === undefined) return;
    out['access-control-allow-origin'] = allowed;
    if (this.#credentials) out['access-control-allow-credentials'] = 'true';
    if (this.#expose !== undefined) out['access-control-expose-headers'] = this.#expose;
  }
}

/** Access-Control-Request-Headers echoed back (credentials with `*`): only a short list of valid tokens. */
function requestedHeaders(value: string | string[] | undefined): string | undefined {
  if (typeof value !== 'string' || value.length > 4096) return undefined;
  const names = value.split(',');
  if (names.length > MAX_REQUEST_HEADERS) return undefined;
  const out: string[] = [];
  for (const n of names) {
    const t = n.trim();
    if (t === '') continue;
    if (!TOKEN.test(t)) return undefined;
    out.push(t.toLowerCase());
  }
  return out.length > 0 ? out.join(', ') : undefined;
}

/** Adds a token to Vary unless it is there already (or Vary is `*`). */
export function appendVary(out: Record<string, string | string[]>, token: string): void {
  const prior = out.vary;
  if (prior === undefined) {
    out.vary = token;
    return;
  }
  const joined = Array.isArray(prior) ? prior.join(', ') : prior;
  const lower = token.toLowerCase();
  for (const t of joined.split(',')) {
    const v = t.trim().toLowerCase();
    if (v === '*' || v === lower) return;
  }
  out.vary = joined === '' ? token : `${joined}, ${token}`;
}
