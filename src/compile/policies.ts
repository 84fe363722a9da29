/**
 * `spec.rules[].policies` (and `spec.catalog.policies`) → PolicyData on the table entries, plus the checks the
 * schema cannot express (CIDR syntax, one-of fields, header conflicts). Pure, like the rest of compile/.
 */
import type { PoliciesSpec } from '../api/gateway-route.ts';
import type { FieldError, FieldPath } from '../api/validate.ts';
import { parseDuration } from '../lib/duration.ts';
import { parseCidr } from '../table/ip-rules.ts';
import { AUTH_REQUEST_HEADERS, type PolicyData } from '../table/policy-types.ts';

export const POLICY_DEFAULTS = {
  ratePeriodMs: 1000,
  signatureHeader: 'x-signature',
  signatureDateHeader: 'date',
  signatureNonceHeader: 'x-signature-nonce',
  signatureClockSkewMs: 5 * 60_000,
  signatureMaxBodyBytes: 1024 * 1024,
  jwtHeader: 'authorization',
  jwtClockSkewMs: 30_000,
  jwksCacheMs: 10 * 60_000,
  externalAuthTimeoutMs: 1000,
  externalAuthMaxResponseBytes: 64 * 1024,
} as const;

/** Headers a policy may not claim for forwarded claims or copied auth headers: the gateway owns them. */
const RESERVED_HEADERS = new Set([
  'host',
  'connection',
  'content-length',
  'transfer-encoding',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-request-id',
  'forwarded',
  'upgrade',
  'te',
  'trailer',
  'keep-alive',
]);

function canonicalCidrs(list: string[] | undefined): string[] | undefined {
  if (!list || list.length === 0) return undefined;
  const out = new Set<string>();
  for (const c of list) {
    const p = parseCidr(c);
    if (!('error' in p)) out.add(p.canonical);
  }
  return [...out].sort();
}

export function policyErrors(spec: PoliciesSpec | undefined, base: FieldPath): FieldError[] {
  const errors: FieldError[] = [];
  if (!spec) return errors;
  const p = [...base, 'policies'];
  for (const field of ['ipAllow', 'ipDeny'] as const) {
    (spec[field] ?? []).forEach((c, i) => {
      const r = parseCidr(c);
      if ('error' in r) errors.push({ path: [...p, field, i], message: r.error });
    });
  }
  const rl = spec.rateLimit;
  if (rl) {
    if ((rl.key ?? 'Route') === 'Header' && !rl.header)
      errors.push({ path: [...p, 'rateLimit', 'header'], message: 'required with key Header' });
    if ((rl.key ?? 'Route') !== 'Header' && rl.header)
      errors.push({ path: [...p, 'rateLimit', 'header'], message: 'only allowed with key Header' });
    if (rl.failureMode !== undefined && rl.scope !== 'Global')
      errors.push({ path: [...p, 'rateLimit', 'failureMode'], message: 'only allowed with scope Global' });
    if (rl.period !== undefined && parseDuration(rl.period) === 0)
      errors.push({ path: [...p, 'rateLimit', 'period'], message: 'must be longer than 0' });
  }
  const jwt = spec.jwt;
  if (jwt) {
    if ((jwt.jwksUrl === undefined) === (jwt.keySet === undefined))
      errors.push({ path: [...p, 'jwt'], message: 'exactly one of jwksUrl or keySet must be set' });
    if (jwt.jwksUrl && jwt.algorithms.some((a) => a.startsWith('HS')))
      errors.push({
        path: [...p, 'jwt', 'algorithms'],
        message: 'HS256/384/512 need a shared secret (keySet), never keys from a JWKS URL',
      });
    (jwt.forwardClaims ?? []).forEach((c, i) => {
      if (RESERVED_HEADERS.has(c.header.toLowerCase()))
        errors.push({
          path: [...p, 'jwt', 'forwardClaims', i, 'header'],
          message: `${c.header} is set by the gateway`,
        });
    });
  }
  (spec.externalAuth?.requestHeaders ?? []).forEach((h, i) => {
    if ((AUTH_REQUEST_HEADERS as readonly string[]).includes(h.toLowerCase()))
      errors.push({
        path: [...p, 'externalAuth', 'requestHeaders', i],
        message: `${h} is set by the gateway for the auth service (from the normalized request); a client's copy is never passed on`,
      });
  });
  (spec.externalAuth?.responseHeaders ?? []).forEach((h, i) => {
    if (RESERVED_HEADERS.has(h.toLowerCase()))
      errors.push({
        path: [...p, 'externalAuth', 'responseHeaders', i],
        message: `${h} is set by the gateway`,
      });
  });
  for (const [field, value] of [
    ['jwt', spec.jwt?.jwksUrl],
    ['externalAuth', spec.externalAuth?.url],
  ] as const) {
    if (value === undefined) continue;
    try {
      new URL(value);
    } catch {
      errors.push({
        path: [...p, field, field === 'jwt' ? 'jwksUrl' : 'url'],
        message: `invalid URL ${JSON.stringify(value)}`,
      });
    }
  }
  return errors;
}

/** Spec → table data; undefined when the rule has no policies (smaller tables, no gate). */
export function policyDataOf(spec: PoliciesSpec | undefined): PolicyData | undefined {
  if (!spec) return undefined;
  const d = POLICY_DEFAULTS;
  const out: PolicyData = {};
  if (spec.priority && spec.priority !== 'Normal') out.priority = spec.priority;
  const allow = canonicalCidrs(spec.ipAllow);
  if (allow) out.ipAllow = allow;
  const deny = canonicalCidrs(spec.ipDeny);
  if (deny) out.ipDeny = deny;
  if (spec.rateLimit) {
    const r = spec.rateLimit;
    out.rateLimit = {
      requests: r.requests,
      periodMs: r.period ? parseDuration(r.period) : d.ratePeriodMs,
      burst: r.burst ?? r.requests,
      key: r.key ?? 'Route',
      ...(r.header ? { header: r.header.toLowerCase() } : {}),
      ...(r.scope === 'Global' ? { scope: 'Global' as const, failureMode: r.failureMode ?? 'Open' } : {}),
    };
  }
  if (spec.maxConcurrentRequests !== undefined) out.maxConcurrentRequests = spec.maxConcurrentRequests;
  if (spec.signature) {
    const s = spec.signature;
    out.signature = {
      keySet: s.keySet,
      header: (s.header ?? d.signatureHeader).toLowerCase(),
      dateHeader: (s.dateHeader ?? d.signatureDateHeader).toLowerCase(),
      nonceHeader: (s.nonceHeader ?? d.signatureNonceHeader).toLowerCase(),
      clockSkewMs: s.clockSkew ? parseDuration(s.clockSkew) : d.signatureClockSkewMs,
      maxBodyBytes: s.maxBodySize ?? d.signatureMaxBodyBytes,
    };
  }
  if (spec.jwt) {
    const j = spec.jwt;
    out.jwt = {
      ...(j.jwksUrl ? { jwksUrl: j.jwksUrl } : {}),
      jwksCacheMs: j.jwksCacheDuration ? parseDuration(j.jwksCacheDuration) : d.jwksCacheMs,
      ...(j.keySet ? { keySet: j.keySet } : {}),
      ...(j.issuer ? { issuer: j.issuer } : {}),
      audiences: j.audiences ?? [],
      algorithms: [...new Set(j.algorithms)].sort(),
      clockSkewMs: j.clockSkew ? parseDuration(j.clockSkew) : d.jwtClockSkewMs,
      header: (j.header ?? d.jwtHeader).toLowerCase(),
      forwardClaims: (j.forwardClaims ?? []).map((c) => ({ claim: c.claim, header: c.header.toLowerCase() })),
    };
  }
  if (spec.externalAuth) {
    const e = spec.externalAuth;
    out.externalAuth = {
      url: e.url,
      timeoutMs: e.timeout ? parseDuration(e.timeout) : d.externalAuthTimeoutMs,
      failureMode: e.failureMode ?? 'Closed',
      requestHeaders: (e.requestHeaders ?? []).map((h) => h.toLowerCase()),
      responseHeaders: (e.responseHeaders ?? []).map((h) => h.toLowerCase()),
      maxResponseBytes: e.maxResponseBodySize ?? d.externalAuthMaxResponseBytes,
    };
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/** Every policy problem of a route (rules and catalog). */
export function routePolicyErrors(spec: {
  rules?: { policies?: PoliciesSpec }[];
  catalog?: { policies?: PoliciesSpec };
}): FieldError[] {
  const errors: FieldError[] = [];
  (spec.rules ?? []).forEach((r, i) => {
    errors.push(...policyErrors(r.policies, ['spec', 'rules', i]));
  });
  if (spec.catalog) errors.push(...policyErrors(spec.catalog.policies, ['spec', 'catalog']));
  return errors;
}
