/**
 * The `nginx.ingress.kubernetes.io/*` annotations of one Ingress → what edgegate does with them (IngressSettings),
 * plus a note for every annotation it does not carry over. The reference for each annotation's meaning is
 * ingress-nginx's annotation documentation (https://kubernetes.github.io/ingress-nginx/user-guide/nginx-configuration/annotations/);
 * docs/ingress.md has the table (annotation → edgegate behaviour → test) and the deliberate differences.
 *
 * Three outcomes, never silence:
 * - mapped: the setting is in IngressSettings;
 * - `unsupported`: the Ingress is served without it (the note names it: an Event and a log line in Kubernetes, a
 *   comment in `edgegate migrate`);
 * - `refused`: the Ingress is not served at all. That is every `*-snippet` (raw nginx configuration: the injection
 *   path of IngressNightmare, CVE-2025-1974 and its family), every access-control annotation edgegate cannot honour
 *   (serving without it would open what it protects), and an invalid value of a supported annotation (as
 *   ingress-nginx denies a location whose annotation fails to parse).
 */
import { CORS_ORIGIN_PATTERN } from '../filter-schemas.ts';
import { NGINX_PREFIX } from './ingress-types.ts';

export type NoteKind = 'unsupported' | 'refused';

export interface IngressNote {
  /** The full annotation name, when the note is about one. */
  annotation?: string;
  kind: NoteKind;
  message: string;
}

export interface RedirectTarget {
  scheme: 'http' | 'https';
  hostname: string;
  port?: number;
  path: string;
  statusCode: 301 | 302 | 303 | 307 | 308;
}

export interface CanarySettings {
  weight?: number;
  weightTotal: number;
  header?: string;
  headerValue?: string;
  headerPattern?: string;
  cookie?: string;
}

export interface IngressSettings {
  useRegex: boolean;
  rewriteTarget?: string;
  /** proxy-body-size in bytes (absent: no limit). */
  maxBodyBytes?: number;
  /** ssl-redirect as written (undefined: the default, true for hosts with TLS). */
  sslRedirect?: boolean;
  forceSslRedirect: boolean;
  connectTimeout?: string;
  readTimeout?: string;
  retryAttempts?: number;
  retryOn?: ('connect-failure' | 'reset' | 'timeout' | '5xx' | '502' | '503' | '504')[];
  rateLimit?: { requests: number; period: string; burst: number };
  ipAllow?: string[];
  ipDeny?: string[];
  canary?: CanarySettings;
  affinityCookie?: string;
  upstreamVhost?: string;
  backendProtocol?: 'HTTP' | 'HTTPS' | 'GRPCS';
  proxySslName?: string;
  appRoot?: string;
  redirect?: RedirectTarget;
  xForwardedPrefix?: string;
  externalAuth?: { url: string; requestHeaders: string[]; responseHeaders?: string[] };
  /** enable-cors and the cors-* annotations, as the CORS filter's fields (ingress-nginx's defaults filled in). */
  cors?: CorsSettings;
}

export interface CorsSettings {
  allowOrigins: string[];
  allowMethods: string[];
  allowHeaders: string[];
  exposeHeaders: string[];
  allowCredentials: boolean;
  maxAge: number;
}

/**
 * ingress-nginx's CORS defaults (its annotations documentation, "Enable CORS"): every origin, these methods and
 * headers, credentials allowed, a preflight cached for 20 days.
 */
export const NGINX_CORS_DEFAULTS: CorsSettings = {
  allowOrigins: ['*'],
  allowMethods: ['GET', 'PUT', 'POST', 'DELETE', 'PATCH', 'OPTIONS'],
  allowHeaders: [
    'DNT',
    'Keep-Alive',
    'User-Agent',
    'X-Requested-With',
    'If-Modified-Since',
    'Cache-Control',
    'Content-Type',
    'Range',
    'Authorization',
  ],
  exposeHeaders: [],
  allowCredentials: true,
  maxAge: 1728000,
};

const CORS_METHODS = new Set([
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'DELETE',
  'CONNECT',
  'OPTIONS',
  'TRACE',
  'PATCH',
  '*',
]);
const CORS_ORIGIN = new RegExp(CORS_ORIGIN_PATTERN);

export interface ParsedAnnotations {
  settings: IngressSettings;
  notes: IngressNote[];
  /** Some note is `refused`: the Ingress is not served. */
  refused: boolean;
}

/** Access control edgegate cannot honour: serving the Ingress without it would expose what it protects. */
const REFUSED_ACCESS_CONTROL = new Set([
  'auth-type',
  'auth-secret',
  'auth-secret-type',
  'auth-realm',
  'auth-tls-secret',
  'auth-tls-verify-client',
  'auth-tls-verify-depth',
  'auth-tls-error-page',
  'auth-tls-pass-certificate-to-upstream',
  'auth-tls-match-cn',
  'satisfy',
  'enable-modsecurity',
  'enable-owasp-core-rules',
  'modsecurity-transaction-id',
  'global-rate-limit',
  'global-rate-limit-window',
  'global-rate-limit-key',
  'global-rate-limit-ignored-cidrs',
]);

const CANARY_KEYS = new Set([
  'canary',
  'canary-weight',
  'canary-weight-total',
  'canary-by-header',
  'canary-by-header-value',
  'canary-by-header-pattern',
  'canary-by-cookie',
]);

const TOKEN = /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/;
const HOSTNAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** strconv.ParseBool's spellings, which ingress-nginx accepts. */
function parseBool(v: string): boolean | undefined {
  if (['1', 't', 'T', 'true', 'TRUE', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'false', 'FALSE', 'False'].includes(v)) return false;
  return undefined;
}

function parseInteger(v: string, min: number, max: number): number | undefined {
  if (!/^[0-9]+$/.test(v.trim())) return undefined;
  const n = Number(v.trim());
  return n >= min && n <= max ? n : undefined;
}

function list(v: string): string[] {
  return v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** ingress-nginx's timeouts are whole seconds ("60"); "60s" is accepted too. */
function seconds(v: string): string | undefined {
  const m = /^([0-9]{1,6})s?$/.exec(v.trim());
  return m ? `${Number(m[1])}s` : undefined;
}

function redirectTarget(v: string, statusCode: RedirectTarget['statusCode']): RedirectTarget | string {
  let url: URL;
  try {
    url = new URL(v.trim());
  } catch {
    return 'expected an absolute http:// or https:// URL';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'expected an http:// or https:// URL';
  if (!HOSTNAME.test(url.hostname)) return `host ${JSON.stringify(url.hostname)} is not a DNS name`;
  if (url.username || url.password) return 'a URL with credentials is not supported';
  const out: RedirectTarget = {
    scheme: url.protocol === 'https:' ? 'https' : 'http',
    hostname: url.hostname,
    path: url.pathname || '/',
    statusCode,
  };
  if (url.port) out.port = Number(url.port);
  return out;
}

/**
 * Parses the ingress-nginx annotations of one Ingress. Annotations outside `nginx.ingress.kubernetes.io/` are not
 * read (they belong to other tools); every one inside is mapped, or named in a note.
 */
export function parseAnnotations(annotations: Record<string, string> | undefined): ParsedAnnotations {
  const s: IngressSettings = { useRegex: false, forceSslRedirect: false };
  const notes: IngressNote[] = [];
  const a: Record<string, string> = {};
  for (const [k, v] of Object.entries(annotations ?? {}))
    if (k.startsWith(NGINX_PREFIX) && typeof v === 'string') a[k.slice(NGINX_PREFIX.length)] = v;
  const full = (k: string) => `${NGINX_PREFIX}${k}`;
  const unsupported = (k: string, why: string) =>
    notes.push({ annotation: full(k), kind: 'unsupported', message: why });
  const refuse = (k: string, why: string) =>
    notes.push({ annotation: full(k), kind: 'refused', message: why });
  const invalid = (k: string, expected: string) =>
    refuse(
      k,
      `invalid value ${JSON.stringify(a[k])}: ${expected}; the Ingress is not served until it is fixed`,
    );
  const handled = new Set<string>();
  const take = (k: string): string | undefined => {
    handled.add(k);
    return a[k];
  };
  const bool = (k: string): boolean | undefined => {
    const v = take(k);
    if (v === undefined) return undefined;
    const b = parseBool(v.trim());
    if (b === undefined) invalid(k, 'expected true or false');
    return b;
  };

  // Snippets first: raw nginx configuration is refused by design, whatever else the Ingress says.
  for (const k of Object.keys(a))
    if (k.endsWith('-snippet')) {
      handled.add(k);
      refuse(
        k,
        'snippet annotations carry raw nginx configuration, which edgegate never runs (the injection path of IngressNightmare, CVE-2025-1974); the Ingress is not served, because what the snippet did (often access control) cannot be known',
      );
    }
  for (const k of Object.keys(a))
    if (REFUSED_ACCESS_CONTROL.has(k)) {
      handled.add(k);
      refuse(
        k,
        'access control edgegate cannot honour; the Ingress is not served rather than served without it (use auth-url, whitelist-source-range, or a GatewayRoute jwt policy)',
      );
    }

  s.useRegex = bool('use-regex') ?? false;
  const rt = take('rewrite-target');
  if (rt !== undefined) {
    if (rt.startsWith('/') && !/[\s?#]/.test(rt) && rt.length <= 1024) s.rewriteTarget = rt;
    else
      invalid(
        'rewrite-target',
        'expected a path starting with "/" ($1…$9 for capture groups), without "?", "#" or spaces',
      );
  }
  const sslRedirect = bool('ssl-redirect');
  if (sslRedirect !== undefined) s.sslRedirect = sslRedirect;
  s.forceSslRedirect = bool('force-ssl-redirect') ?? false;

  const ct = take('proxy-connect-timeout');
  if (ct !== undefined) {
    const d = seconds(ct);
    if (d && d !== '0s') s.connectTimeout = d;
    else invalid('proxy-connect-timeout', 'expected whole seconds above 0');
  }
  const rd = take('proxy-read-timeout');
  if (rd !== undefined) {
    const d = seconds(rd);
    if (d && d !== '0s') s.readTimeout = d;
    else invalid('proxy-read-timeout', 'expected whole seconds above 0');
  }
  if (take('proxy-send-timeout') !== undefined)
    unsupported(
      'proxy-send-timeout',
      'edgegate has no per-write timeout towards the upstream; the request body is bounded by --client-body-timeout',
    );
  const tries = take('proxy-next-upstream-tries');
  if (tries !== undefined) {
    const n = parseInteger(tries, 0, 1000);
    // nginx counts the first try; 0 is "no limit", which edgegate caps at its maximum of 10 retries.
    if (n === undefined) invalid('proxy-next-upstream-tries', 'expected a whole number');
    else s.retryAttempts = n === 0 ? 10 : Math.min(10, n - 1);
  }
  const nextUpstream = take('proxy-next-upstream');
  if (nextUpstream !== undefined) {
    const on = new Set<NonNullable<IngressSettings['retryOn']>[number]>();
    const dropped: string[] = [];
    let off = false;
    for (const t of nextUpstream.split(/\s+/).filter(Boolean)) {
      if (t === 'off') off = true;
      else if (t === 'error') {
        on.add('connect-failure');
        on.add('reset');
      } else if (t === 'timeout') on.add('timeout');
      else if (t === 'http_502') on.add('502');
      else if (t === 'http_503') on.add('503');
      else if (t === 'http_504') on.add('504');
      else if (t !== 'non_idempotent') dropped.push(t);
    }
    if (off) s.retryAttempts = 0;
    else s.retryOn = [...on];
    if (dropped.length > 0 || nextUpstream.includes('non_idempotent'))
      unsupported(
        'proxy-next-upstream',
        `not carried over: ${[...dropped, ...(nextUpstream.includes('non_idempotent') ? ['non_idempotent'] : [])].join(' ')} (edgegate retries on connect failures, resets, timeouts and 502/503/504, and only idempotent requests without a body)`,
      );
  }
  const bodySize = take('proxy-body-size');
  if (bodySize !== undefined) {
    // nginx sizes: bytes, or k / m / g (either case); 0 turns the limit off.
    const m = /^([0-9]{1,13})([kKmMgG]?)$/.exec(bodySize.trim());
    const bytes = m
      ? Number(m[1]) *
        ({ '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 } as Record<string, number>)[m[2]!.toLowerCase()]!
      : -1;
    if (bytes < 0 || bytes > 1099511627776)
      invalid('proxy-body-size', 'expected a size such as 8m, 512k or 0');
    else if (bytes > 0) s.maxBodyBytes = bytes;
  }

  const rps = take('limit-rps');
  const rpm = take('limit-rpm');
  const mult = take('limit-burst-multiplier');
  const multiplier = mult === undefined ? 5 : parseInteger(mult, 1, 1000);
  if (multiplier === undefined) invalid('limit-burst-multiplier', 'expected a whole number from 1');
  else if (rps !== undefined || rpm !== undefined) {
    const key = rps !== undefined ? 'limit-rps' : 'limit-rpm';
    const n = parseInteger((rps ?? rpm)!, 1, 1_000_000);
    if (n === undefined) invalid(key, 'expected a whole number from 1');
    else s.rateLimit = { requests: n, period: rps !== undefined ? '1s' : '1m', burst: n * multiplier };
    if (rps !== undefined && rpm !== undefined)
      unsupported(
        'limit-rpm',
        'edgegate has one rate limit per rule: limit-rps is applied, limit-rpm is not',
      );
  }
  if (take('limit-connections') !== undefined)
    unsupported(
      'limit-connections',
      "edgegate's concurrency limit (maxConcurrentRequests) is per rule, not per client address as nginx's; not mapped",
    );
  if (take('limit-whitelist') !== undefined)
    unsupported('limit-whitelist', 'every client is rate limited (no exempt addresses)');
  for (const [k, field] of [
    ['whitelist-source-range', 'ipAllow'],
    ['allowlist-source-range', 'ipAllow'],
    ['denylist-source-range', 'ipDeny'],
  ] as const) {
    const v = take(k);
    if (v === undefined) continue;
    const cidrs = list(v);
    if (cidrs.length === 0 || cidrs.some((c) => !/^[0-9A-Fa-f:.]+(\/[0-9]{1,3})?$/.test(c)))
      invalid(k, 'expected comma-separated CIDRs');
    else s[field] = [...(s[field] ?? []), ...cidrs];
  }

  const canary = bool('canary');
  const canaryKeys = Object.keys(a).filter((k) => CANARY_KEYS.has(k) && k !== 'canary');
  if (canary) {
    const c: CanarySettings = { weightTotal: 100 };
    const total = take('canary-weight-total');
    if (total !== undefined) {
      const n = parseInteger(total, 1, 1_000_000);
      if (n === undefined) invalid('canary-weight-total', 'expected a whole number from 1');
      else c.weightTotal = n;
    }
    const w = take('canary-weight');
    if (w !== undefined) {
      const n = parseInteger(w, 0, c.weightTotal);
      if (n === undefined) invalid('canary-weight', `expected a whole number from 0 to ${c.weightTotal}`);
      else c.weight = n;
    }
    const h = take('canary-by-header');
    if (h !== undefined) {
      if (TOKEN.test(h) && h.length <= 256) c.header = h;
      else invalid('canary-by-header', 'expected a header name');
    }
    const hv = take('canary-by-header-value');
    const hp = take('canary-by-header-pattern');
    if (hv !== undefined) {
      if (!/[\r\n\0]/.test(hv) && hv.length <= 1024) c.headerValue = hv;
      else invalid('canary-by-header-value', 'expected a header value');
    } else if (hp !== undefined) c.headerPattern = hp;
    if ((hv !== undefined || hp !== undefined) && h === undefined)
      unsupported('canary-by-header-value', 'needs canary-by-header (ingress-nginx ignores it too)');
    const ck = take('canary-by-cookie');
    if (ck !== undefined) {
      if (TOKEN.test(ck) && ck.length <= 256) c.cookie = ck;
      else invalid('canary-by-cookie', 'expected a cookie name');
    }
    s.canary = c;
  } else {
    for (const k of canaryKeys) {
      handled.add(k);
      unsupported(
        k,
        'ignored: the Ingress is not a canary (nginx.ingress.kubernetes.io/canary is not "true")',
      );
    }
  }

  const affinity = take('affinity');
  if (affinity !== undefined) {
    if (affinity === 'cookie') {
      const name = take('session-cookie-name') ?? 'INGRESSCOOKIE';
      if (TOKEN.test(name) && name.length <= 256) s.affinityCookie = name;
      else invalid('session-cookie-name', 'expected a cookie name');
    } else invalid('affinity', 'only "cookie" is supported');
  }
  for (const k of Object.keys(a))
    if (
      (k.startsWith('session-cookie-') && k !== 'session-cookie-name') ||
      k === 'affinity-mode' ||
      k === 'affinity-canary-behavior'
    ) {
      handled.add(k);
      unsupported(
        k,
        'edgegate hashes the cookie the client sends (consistent hash) and does not issue or shape the cookie itself',
      );
    }
  if (a['session-cookie-name'] !== undefined && affinity === undefined) {
    handled.add('session-cookie-name');
    unsupported('session-cookie-name', 'ignored without affinity: cookie');
  }

  const vhost = take('upstream-vhost');
  if (vhost !== undefined) {
    if (HOSTNAME.test(vhost.trim().toLowerCase()) && vhost.trim().length <= 253)
      s.upstreamVhost = vhost.trim().toLowerCase();
    else invalid('upstream-vhost', 'expected a DNS name (no port, no variables)');
  }
  const bp = take('backend-protocol');
  if (bp !== undefined) {
    const p = bp.trim().toUpperCase();
    if (p === 'HTTP' || p === 'HTTPS' || p === 'GRPCS') s.backendProtocol = p;
    else if (p === 'GRPC' || p === 'H2C')
      refuse(
        'backend-protocol',
        `${p}: HTTP/2 without TLS to a backend is not supported by edgegate (use GRPCS); the Ingress is not served rather than spoken to over HTTP/1.1`,
      );
    else invalid('backend-protocol', 'expected HTTP, HTTPS or GRPCS');
  }
  const sslName = take('proxy-ssl-name');
  if (sslName !== undefined) {
    if (HOSTNAME.test(sslName.trim())) s.proxySslName = sslName.trim();
    else invalid('proxy-ssl-name', 'expected a DNS name');
  }
  const verify = take('proxy-ssl-verify');
  if (verify !== undefined && verify.trim() !== 'on')
    unsupported(
      'proxy-ssl-verify',
      'edgegate always verifies upstream certificates (against the system trust store)',
    );
  for (const k of [
    'proxy-ssl-secret',
    'proxy-ssl-server-name',
    'proxy-ssl-protocols',
    'proxy-ssl-ciphers',
    'proxy-ssl-verify-depth',
  ]) {
    if (a[k] === undefined) continue;
    handled.add(k);
    unsupported(
      k,
      'not carried over: write the backend tls of a GatewayRoute (caBundle, serverName) instead',
    );
  }

  const appRoot = take('app-root');
  if (appRoot !== undefined) {
    if (appRoot.startsWith('/') && !/[\s?#]/.test(appRoot)) s.appRoot = appRoot;
    else invalid('app-root', 'expected a path starting with "/"');
  }
  const codeOf = (k: string, dflt: 301 | 302): RedirectTarget['statusCode'] | undefined => {
    const v = take(k);
    if (v === undefined) return dflt;
    const n = parseInteger(v, 300, 308);
    if (n === 301 || n === 302 || n === 303 || n === 307 || n === 308) return n;
    invalid(k, 'expected 301, 302, 303, 307 or 308');
    return undefined;
  };
  const perm = take('permanent-redirect');
  const temp = take('temporal-redirect');
  const permCode = codeOf('permanent-redirect-code', 301);
  const tempCode = codeOf('temporal-redirect-code', 302);
  const redirectOf = (k: string, v: string, code: RedirectTarget['statusCode'] | undefined) => {
    if (code === undefined) return;
    const r = redirectTarget(v, code);
    if (typeof r === 'string') invalid(k, r);
    else s.redirect = r;
  };
  if (perm !== undefined) {
    redirectOf('permanent-redirect', perm, permCode);
    if (temp !== undefined) unsupported('temporal-redirect', 'ignored: permanent-redirect is set too');
  } else if (temp !== undefined) redirectOf('temporal-redirect', temp, tempCode);

  const prefix = take('x-forwarded-prefix');
  if (prefix !== undefined) {
    if (!/[\r\n\0]/.test(prefix) && prefix.length <= 4096 && prefix !== '') s.xForwardedPrefix = prefix;
    else invalid('x-forwarded-prefix', 'expected a header value');
  }

  const authUrl = take('auth-url');
  if (authUrl !== undefined) {
    const u = authUrl.trim();
    if (/^https?:\/\/[^\s$]+$/.test(u) && u.length <= 2048) {
      // nginx's auth_request passes every request header; the credentials are what auth services read.
      s.externalAuth = { url: u, requestHeaders: ['Authorization', 'Cookie'] };
      const rh = take('auth-response-headers');
      if (rh !== undefined) {
        const names = list(rh);
        if (names.every((n) => TOKEN.test(n))) s.externalAuth.responseHeaders = names;
        else invalid('auth-response-headers', 'expected comma-separated header names');
      }
      const method = take('auth-method');
      if (method !== undefined && method.trim().toUpperCase() !== 'GET')
        unsupported('auth-method', 'edgegate asks the auth service with GET');
    } else invalid('auth-url', 'expected an http:// or https:// URL without nginx variables ($host, …)');
  }
  for (const k of Object.keys(a))
    if (k.startsWith('auth-') && !handled.has(k)) {
      handled.add(k);
      unsupported(
        k,
        a['auth-url'] !== undefined
          ? 'not carried over: edgegate forwards the auth service’s answer as it is (no sign-in redirect, cache or extra headers)'
          : 'ignored without auth-url',
      );
    }
  const corsOn = bool('enable-cors');
  if (corsOn === true) {
    const c: CorsSettings = { ...NGINX_CORS_DEFAULTS };
    const origins = take('cors-allow-origin');
    if (origins !== undefined) {
      const o = list(origins);
      if (o.length > 0 && o.length <= 64 && o.every((x) => x.length <= 253 && CORS_ORIGIN.test(x)))
        c.allowOrigins = o;
      else
        invalid(
          'cors-allow-origin',
          'expected "*" or comma-separated origins (https://a.example, https://*.example)',
        );
    }
    const methods = take('cors-allow-methods');
    if (methods !== undefined) {
      const m = list(methods).map((x) => x.toUpperCase());
      if (m.length > 0 && m.length <= 10 && m.every((x) => CORS_METHODS.has(x)))
        c.allowMethods = [...new Set(m)];
      else invalid('cors-allow-methods', 'expected comma-separated HTTP methods');
    }
    for (const [k, field] of [
      ['cors-allow-headers', 'allowHeaders'],
      ['cors-expose-headers', 'exposeHeaders'],
    ] as const) {
      const v = take(k);
      if (v === undefined) continue;
      const names = list(v);
      if (names.length <= 64 && names.every((n) => n === '*' || TOKEN.test(n)))
        c[field] = [...new Set(names)];
      else invalid(k, 'expected comma-separated header names');
    }
    const credentials = bool('cors-allow-credentials');
    if (credentials !== undefined) c.allowCredentials = credentials;
    const maxAge = take('cors-max-age');
    if (maxAge !== undefined) {
      const n = parseInteger(maxAge, 1, 2147483647);
      if (n !== undefined) c.maxAge = n;
      else invalid('cors-max-age', 'expected a whole number of seconds');
    }
    s.cors = c;
  }
  for (const k of Object.keys(a))
    if (k.startsWith('cors-') && !handled.has(k)) {
      handled.add(k);
      unsupported(
        k,
        corsOn === false || corsOn === undefined
          ? 'ignored without enable-cors: "true"'
          : 'not a CORS setting edgegate knows (cors-allow-origin, -methods, -headers, cors-expose-headers, cors-allow-credentials, cors-max-age)',
      );
    }

  for (const k of Object.keys(a).sort())
    if (!handled.has(k)) unsupported(k, 'not supported by edgegate; the Ingress is served without it');
  notes.sort((x, y) => (x.annotation ?? '').localeCompare(y.annotation ?? ''));
  return { settings: s, notes, refused: notes.some((n) => n.kind === 'refused') };
}
