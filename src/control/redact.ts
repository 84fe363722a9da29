/**
 * Secrets out of every debug view. The admin server's `/debug/*` answers go through `redactSecrets` whole, so a
 * view added later is covered too. What is replaced by `[redacted]`:
 *
 * - a string (or every string inside an object or array) under a key that names a secret: `…secret`, `…token`,
 *   `…password`, `…passwd`, `…credential(s)`, `…authorization`, `…apikey`/`…api_key`, `…privatekey`, `…keypem`,
 *   `…cookie` (case-insensitive; `tokens` counts and `keySet` names stay);
 * - the value of a header, query parameter or cookie whose NAME looks secret (`authorization`, `cookie`,
 *   `x-api-key`, `*token*`, `*secret*`, `*key*`, `*passw*`, `*auth*`, `*session*`, `*signature*`), written as
 *   `{ name, value }` (matches) or `[name, value]` (header edits);
 * - in any string: the userinfo of a URL (`https://user:pass@host` → `https://[redacted]@host`), every query value
 *   of a URL (`?token=…` → `?token=[redacted]`), a bearer or basic credential, a PEM private key;
 * - any occurrence of a value the caller knows to be secret (the Consul ACL token, …).
 */

const REDACTED = '[redacted]';

const SECRET_KEY_SUFFIXES = [
  'secret',
  'token',
  'password',
  'passwd',
  'credential',
  'credentials',
  'authorization',
  'apikey',
  'api_key',
  'privatekey',
  'private_key',
  'keypem',
  'cookie',
];

const SECRET_NAME = /auth|token|secret|key|passw|cookie|session|signature|credential/i;
/** A header name (RFC 9110 token): what the first item of a `[name, value]` header edit looks like. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$/;

const URL_USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#@"'<>]+@/gi;
const URL_QUERY = /(:\/\/[^\s?#"'<>]*\?)([^\s#"'<>]*)/g;
const AUTH_SCHEME = /\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]{8,}/gi;
const PRIVATE_KEY = /-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----[\s\S]*?(-----END [A-Z0-9 ]*PRIVATE KEY-----|$)/g;

function secretKey(key: string): boolean {
  const k = key.toLowerCase().replace(/-/g, '_');
  return SECRET_KEY_SUFFIXES.some((s) => k.endsWith(s));
}

function redactQuery(query: string): string {
  return query
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      return eq < 0 ? pair : `${pair.slice(0, eq + 1)}${REDACTED}`;
    })
    .join('&');
}

/** One string: URL credentials and query values, auth schemes, private keys, known secret values. */
export function redactString(text: string, known: readonly string[] = []): string {
  let out = text;
  for (const k of known) if (k.length >= 4 && out.includes(k)) out = out.split(k).join(REDACTED);
  if (out.includes('://')) {
    out = out.replace(URL_USERINFO, `$1${REDACTED}@`);
    out = out.replace(URL_QUERY, (_m, head: string, query: string) => head + redactQuery(query));
  }
  if (out.includes('PRIVATE KEY-----')) out = out.replace(PRIVATE_KEY, `${REDACTED} private key`);
  return out.replace(AUTH_SCHEME, `$1$2${REDACTED}`);
}

function blank(value: unknown): unknown {
  if (typeof value === 'string') return value === '' ? value : REDACTED;
  if (Array.isArray(value)) return value.map(blank);
  if (value && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, blank(v)]));
  return value;
}

/** A copy of `value` (JSON-like) with secrets replaced; see the module comment for what counts. */
export function redactSecrets(value: unknown, known: readonly string[] = []): unknown {
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') return redactString(v, known);
    if (Array.isArray(v)) {
      // [name, value] pairs: header edits.
      if (
        v.length === 2 &&
        typeof v[0] === 'string' &&
        typeof v[1] === 'string' &&
        HEADER_NAME.test(v[0]) &&
        SECRET_NAME.test(v[0])
      )
        return [v[0], blank(v[1])];
      return v.map(walk);
    }
    if (v && typeof v === 'object') {
      if (v instanceof Map) return walk(Object.fromEntries(v));
      const o = v as Record<string, unknown>;
      const namedSecret = typeof o.name === 'string' && 'value' in o && SECRET_NAME.test(o.name);
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(o)) {
        if (namedSecret && k === 'value') out[k] = blank(x);
        else if (secretKey(k)) out[k] = blank(x);
        else out[k] = walk(x);
      }
      return out;
    }
    return v;
  };
  return walk(value);
}
