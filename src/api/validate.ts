/**
 * Runtime validation of GatewayRoutes: the schema check (TypeBox) plus the rules a schema cannot say. Every
 * error names the field by its path (`spec.rules[2].matches[0].path.value`); the caller adds the object and,
 * for files, the line.
 */
import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { type ValueError, ValueErrorType } from '@sinclair/typebox/errors';
import { Value } from '@sinclair/typebox/value';
import { parseDuration } from '../lib/duration.ts';
import { CatalogFile } from './catalog.ts';
import { compileDefaults } from './defaults.ts';
import { checkCompression, checkCors, checkMirror } from './filter-checks.ts';
import {
  FILTER_FIELDS,
  GatewayRoute,
  type LoadBalancerSpec,
  type RouteFilter,
  type RouteRule,
  type TimeoutsSpec,
} from './gateway-route.ts';
import { regexSyntaxError } from './linear-regex.ts';
import { reservedRequestHeader, reservedResponseHeader } from './reserved-headers.ts';

export type FieldPath = (string | number)[];

export interface FieldError {
  path: FieldPath;
  message: string;
  /** Line in the source file, when the object came from one. */
  line?: number;
}

/** `['spec','rules',2,'matches',0]` → `spec.rules[2].matches[0]`. */
export function formatPath(path: FieldPath): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? part : `.${part}`;
  }
  return out === '' ? '(root)' : out;
}

function pointerToPath(pointer: string): FieldPath {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((p) => p.replaceAll('~1', '/').replaceAll('~0', '~'))
    .map((p) => (/^(0|[1-9][0-9]*)$/.test(p) ? Number(p) : p));
}

function describeSchemaError(error: ValueError): string {
  const schema = error.schema as TSchema & Record<string, unknown>;
  switch (error.type) {
    case ValueErrorType.ObjectAdditionalProperties:
      return 'unknown field';
    case ValueErrorType.ObjectRequiredProperty:
      return 'required field is missing';
    case ValueErrorType.Union: {
      const options = (schema.anyOf as TSchema[] | undefined) ?? [];
      const literals = options.map((o) => o.const).filter((c) => c !== undefined);
      if (literals.length === options.length && literals.length > 0) {
        return `must be one of ${literals.map((l) => JSON.stringify(l)).join(', ')}; got ${JSON.stringify(error.value)}`;
      }
      if (schema['x-kubernetes-int-or-string']) return `must be a port number (1-65535) or a port name`;
      return `invalid value ${JSON.stringify(error.value)}`;
    }
    case ValueErrorType.Literal:
      return `must be ${JSON.stringify(schema.const)}; got ${JSON.stringify(error.value)}`;
    case ValueErrorType.StringPattern:
      if (schema.description) return `invalid value ${JSON.stringify(error.value)}: ${schema.description}`;
      return `invalid value ${JSON.stringify(error.value)} (must match ${String(schema.pattern)})`;
    case ValueErrorType.IntegerMaximum:
    case ValueErrorType.IntegerMinimum:
    case ValueErrorType.NumberMaximum:
    case ValueErrorType.NumberMinimum:
      return `${JSON.stringify(error.value)} is out of range ${schema.minimum ?? '-∞'}..${schema.maximum ?? '∞'}`;
    default:
      return `${error.message.charAt(0).toLowerCase()}${error.message.slice(1)}; got ${JSON.stringify(error.value)}`;
  }
}

function schemaErrors(
  schemaCheck: { Errors(v: unknown): Iterable<ValueError> },
  value: unknown,
): FieldError[] {
  const out: FieldError[] = [];
  const seen = new Set<string>();
  for (const error of schemaCheck.Errors(value)) {
    const path = pointerToPath(error.path);
    // A union reports every branch; one line per field is what a user wants.
    const key = formatPath(path);
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ path, message: describeSchemaError(error) });
    if (out.length >= 50) break;
  }
  return out;
}

const routeCheck = TypeCompiler.Compile(GatewayRoute);
const routeDefaults = compileDefaults(GatewayRoute);
const catalogCheck = TypeCompiler.Compile(CatalogFile);

const FILTER_FIELD = FILTER_FIELDS satisfies Record<RouteFilter['type'], keyof RouteFilter>;

const PATH_FIELD = {
  ReplaceFullPath: 'replaceFullPath',
  ReplacePrefixMatch: 'replacePrefixMatch',
  ReplaceRegexMatch: 'replaceRegexMatch',
} as const;

/** How many capture groups a (valid) regex has. */
function captureGroups(pattern: string): number {
  return new RegExp(`${pattern}|`).exec('')!.length - 1;
}

function checkPathValue(value: string, path: FieldPath, errors: FieldError[]) {
  if (!value.startsWith('/'))
    errors.push({ path, message: `path ${JSON.stringify(value)} must start with "/"` });
  else if (/[?#\s]/.test(value))
    errors.push({ path, message: `path ${JSON.stringify(value)} must not contain "?", "#" or spaces` });
  else if (/(^|\/)\.\.?(\/|$)/.test(value) || value.includes('//'))
    errors.push({
      path,
      message: `path ${JSON.stringify(value)} must be normalized (no "//", "." or ".." segments)`,
    });
}

function checkRule(rule: RouteRule, base: FieldPath, errors: FieldError[]) {
  const matches = rule.matches ?? [];
  matches.forEach((m, mi) => {
    const mp = [...base, 'matches', mi];
    if (m.path) {
      if (m.path.type === 'RegularExpression') {
        const why = regexSyntaxError(m.path.value);
        if (why)
          errors.push({ path: [...mp, 'path', 'value'], message: `invalid regular expression: ${why}` });
      } else {
        checkPathValue(m.path.value, [...mp, 'path', 'value'], errors);
      }
    }
    for (const [kind, list] of [
      ['headers', m.headers ?? []],
      ['queryParams', m.queryParams ?? []],
      ['cookies', m.cookies ?? []],
    ] as const) {
      list.forEach((h, hi) => {
        if (h.type === 'RegularExpression') {
          const why = regexSyntaxError(h.value);
          if (why)
            errors.push({ path: [...mp, kind, hi, 'value'], message: `invalid regular expression: ${why}` });
        }
      });
    }
  });

  const filters = rule.filters ?? [];
  const seenTypes = new Set<string>();
  let redirect = false;
  filters.forEach((f, fi) => {
    const fp = [...base, 'filters', fi];
    const want = FILTER_FIELD[f.type];
    if (!want) return; // schema error already reported
    if (f[want] === undefined)
      errors.push({ path: [...fp, want], message: `filter of type ${f.type} needs ${want}` });
    for (const [t, field] of Object.entries(FILTER_FIELD)) {
      if (t !== f.type && f[field] !== undefined)
        errors.push({ path: [...fp, field], message: `${field} is only allowed with type ${t}` });
    }
    if (seenTypes.has(f.type) && f.type !== 'RequestMirror')
      errors.push({ path: [...fp, 'type'], message: `${f.type} may appear once per rule` });
    seenTypes.add(f.type);
    if (f.type === 'RequestRedirect') redirect = true;
    if (f.cors) checkCors(f.cors, [...fp, 'cors'], errors);
    if (f.requestMirror) checkMirror(f.requestMirror, [...fp, 'requestMirror'], errors);
    if (f.responseCompression)
      checkCompression(f.responseCompression, [...fp, 'responseCompression'], errors);
    const edits = f.requestHeaderModifier ?? f.responseHeaderModifier;
    if (edits) {
      const field = f.requestHeaderModifier ? 'requestHeaderModifier' : 'responseHeaderModifier';
      const reserved = f.requestHeaderModifier ? reservedRequestHeader : reservedResponseHeader;
      for (const op of ['set', 'add', 'remove'] as const)
        edits[op]?.forEach((e, ei) => {
          const name = typeof e === 'string' ? e : e.name;
          const why = reserved(name.toLowerCase());
          if (why)
            errors.push({
              path: [...fp, field, op, ei, ...(typeof e === 'string' ? [] : ['name'])],
              message: `header ${JSON.stringify(name)} cannot be edited by a route: ${why}`,
            });
        });
    }
    const pathMod = f.urlRewrite?.path ?? f.requestRedirect?.path;
    if (pathMod) {
      const pp = [...fp, f.urlRewrite ? 'urlRewrite' : 'requestRedirect', 'path'];
      for (const [t, field] of Object.entries(PATH_FIELD)) {
        const value = pathMod[field as keyof typeof pathMod];
        if (t === pathMod.type && value === undefined)
          errors.push({ path: [...pp, field], message: `required with type ${t}` });
        if (t !== pathMod.type && value !== undefined)
          errors.push({ path: [...pp, field], message: `only allowed with type ${t}` });
      }
      if (pathMod.type === 'ReplacePrefixMatch') {
        const nonPrefix = (matches.length === 0 ? [] : matches).findIndex(
          (m) => (m.path?.type ?? 'PathPrefix') !== 'PathPrefix',
        );
        if (nonPrefix >= 0)
          errors.push({
            path: [...base, 'matches', nonPrefix, 'path', 'type'],
            message: 'ReplacePrefixMatch needs every match of the rule to be a PathPrefix match',
          });
      }
      if (pathMod.type === 'ReplaceRegexMatch') {
        const nonRegex = matches.findIndex((m) => m.path?.type !== 'RegularExpression');
        if (matches.length === 0 || nonRegex >= 0)
          errors.push({
            path:
              matches.length === 0 ? [...base, 'matches'] : [...base, 'matches', nonRegex, 'path', 'type'],
            message: 'ReplaceRegexMatch needs every match of the rule to be a RegularExpression path match',
          });
        else {
          const used = Math.max(
            0,
            ...[...(pathMod.replaceRegexMatch ?? '').matchAll(/\$([1-9])/g)].map((g) => Number(g[1])),
          );
          matches.forEach((m, mi) => {
            const groups = m.path && !regexSyntaxError(m.path.value) ? captureGroups(m.path.value) : used;
            if (used > groups)
              errors.push({
                path: [...pp, 'replaceRegexMatch'],
                message: `$${used} names a capture group that the path regex of match ${mi} does not have (it has ${groups})`,
              });
          });
        }
      }
    }
  });
  if (filters.some((f) => f.type === 'URLRewrite') && redirect)
    errors.push({ path: [...base, 'filters'], message: 'URLRewrite and RequestRedirect cannot be combined' });
  if (
    redirect &&
    filters.some((f) => f.type === 'CORS' || f.type === 'RequestMirror' || f.type === 'ResponseCompression')
  )
    errors.push({
      path: [...base, 'filters'],
      message: 'a RequestRedirect rule cannot have CORS, RequestMirror or ResponseCompression filters',
    });

  const backends = rule.backends ?? [];
  if (redirect && backends.length > 0)
    errors.push({
      path: [...base, 'backends'],
      message: 'a rule with a RequestRedirect filter has no backends',
    });
  if (!redirect && backends.length === 0)
    errors.push({ path: [...base, 'backends'], message: 'at least one backend is required' });
  backends.forEach((b, bi) => {
    const bp = [...base, 'backends', bi];
    const kinds = [b.consul ? 'consul' : undefined, b.service ? 'service' : undefined].filter(Boolean);
    if (kinds.length !== 1)
      errors.push({ path: bp, message: 'exactly one of consul or service must be set' });
    if (b.consul?.failover)
      checkFailover(
        b.consul.failover.datacenters,
        b.consul.datacenter,
        [...bp, 'consul', 'failover'],
        errors,
      );
    if (b.protocol === 'h2' && !b.tls)
      errors.push({
        path: [...bp, 'protocol'],
        message: 'h2 to a backend needs tls (for cleartext HTTP/2 use protocol h2c)',
      });
    if (b.protocol === 'h2c' && b.tls)
      errors.push({
        path: [...bp, 'protocol'],
        message: 'h2c is cleartext HTTP/2 and excludes tls (for HTTP/2 over TLS use protocol h2)',
      });
    if (b.consul?.peer !== undefined && b.consul.datacenter !== undefined)
      errors.push({ path: [...bp, 'consul', 'peer'], message: 'peer and datacenter are exclusive' });
    if (b.consul?.mesh && b.consul.peer !== undefined)
      errors.push({ path: [...bp, 'consul', 'mesh'], message: 'mesh to a peered service is not supported' });
    if (b.consul?.mesh && b.tls)
      errors.push({
        path: [...bp, 'tls'],
        message:
          'a mesh backend gets its TLS from Consul Connect (leaf certificate and CA roots); remove tls',
      });
    if (b.tls?.caBundle !== undefined && !b.tls.caBundle.includes('-----BEGIN CERTIFICATE-----'))
      errors.push({
        path: [...bp, 'tls', 'caBundle'],
        message: 'expected PEM certificates (-----BEGIN CERTIFICATE-----)',
      });
  });
  if (backends.length > 0 && backends.every((b) => (b.weight ?? 1) === 0))
    errors.push({ path: [...base, 'backends'], message: 'the weights of a rule must sum above zero' });
}

/** Failover datacenters: no repeats, and never the primary datacenter itself. */
function checkFailover(
  dcs: readonly string[],
  primary: string | undefined,
  base: FieldPath,
  errors: FieldError[],
): void {
  dcs.forEach((dc, i) => {
    if (dcs.indexOf(dc) !== i)
      errors.push({ path: [...base, 'datacenters', i], message: `datacenter ${dc} is listed twice` });
    else if (dc === primary)
      errors.push({
        path: [...base, 'datacenters', i],
        message: `datacenter ${dc} is the backend's own datacenter, not a fallback`,
      });
  });
}

/** Rule-level traffic settings shared by rules and catalog routes: load balancer and timeouts. */
function checkTraffic(
  lb: LoadBalancerSpec | undefined,
  timeouts: TimeoutsSpec | undefined,
  base: FieldPath,
  errors: FieldError[],
) {
  if (lb) {
    const ch = lb.consistentHash;
    if (lb.type === 'ConsistentHash') {
      const keys = ch
        ? [ch.header, ch.cookie, ch.sourceIP ? true : undefined].filter((k) => k !== undefined)
        : [];
      if (keys.length !== 1)
        errors.push({
          path: [...base, 'loadBalancer', 'consistentHash'],
          message: 'type ConsistentHash needs exactly one of header, cookie or sourceIP: true',
        });
    } else if (ch !== undefined) {
      errors.push({
        path: [...base, 'loadBalancer', 'consistentHash'],
        message: 'consistentHash is only allowed with type ConsistentHash',
      });
    }
  }
  if (timeouts?.request && timeouts.backendRequest) {
    const whole = parseDuration(timeouts.request);
    const oneTry = parseDuration(timeouts.backendRequest);
    if (whole > 0 && oneTry > whole)
      errors.push({
        path: [...base, 'timeouts', 'backendRequest'],
        message: `backendRequest (${timeouts.backendRequest}) must not exceed request (${timeouts.request})`,
      });
  }
}

/**
 * A deep copy of parsed YAML/JSON (plain objects, arrays, primitives), several times faster than structuredClone,
 * which serializes. Anything else (Dates, Maps, class instances) and very deep or cyclic data take structuredClone,
 * so the result is what structuredClone would give.
 */
function clonePlain(value: unknown, depth = 0): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (depth > 64) return structuredClone(value);
  if (Array.isArray(value)) {
    const out = new Array(value.length);
    for (let i = 0; i < value.length; i++) {
      if (!(i in value)) return structuredClone(value); // sparse: keep the holes
      out[i] = clonePlain(value[i], depth + 1);
    }
    return out;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return structuredClone(value);
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value))
    out[key] = clonePlain((value as Record<string, unknown>)[key], depth + 1);
  return out;
}

export interface ValidRoute {
  ok: true;
  route: GatewayRoute;
}
export interface InvalidRoute {
  ok: false;
  errors: FieldError[];
}

/**
 * Validates one GatewayRoute object. On success the returned route has every default filled in (a copy: the
 * input is not changed).
 */
/** spec.tls: names only hostnames the route serves; a route without hostnames cannot claim a certificate. */
function checkRouteTls(
  tls: { hostnames?: string[]; secretName: string }[] | undefined,
  hostnames: string[] | undefined,
  errors: FieldError[],
): void {
  if (!tls) return;
  if (!hostnames || hostnames.length === 0) {
    if (tls.length > 0)
      errors.push({
        path: ['spec', 'tls'],
        message: 'a route with tls needs spec.hostnames (the default certificate serves every other host)',
      });
    return;
  }
  const own = new Set(hostnames.map((h) => h.toLowerCase()));
  tls.forEach((t, i) => {
    (t.hostnames ?? []).forEach((h, j) => {
      if (!own.has(h.toLowerCase()))
        errors.push({
          path: ['spec', 'tls', i, 'hostnames', j],
          message: `${h} is not one of this route's spec.hostnames`,
        });
    });
  });
}

export function validateRoute(raw: unknown): ValidRoute | InvalidRoute {
  const route = routeDefaults(clonePlain(raw)) as GatewayRoute;
  // The compiled Check is fast; walking Errors() is not, so only do it when there is something to report.
  const errors = routeCheck.Check(route) ? [] : schemaErrors(routeCheck, route);
  if (errors.length > 0) return { ok: false, errors };
  const spec = route.spec;
  if (spec.rules && spec.catalog)
    errors.push({ path: ['spec', 'catalog'], message: 'a route has either rules or catalog, not both' });
  if (!spec.rules && !spec.catalog)
    errors.push({ path: ['spec'], message: 'a route needs rules or catalog' });
  const seenHosts = new Map<string, number>();
  (spec.hostnames ?? []).forEach((h, i) => {
    const first = seenHosts.get(h);
    if (first !== undefined)
      errors.push({
        path: ['spec', 'hostnames', i],
        message: `duplicate hostname ${h} (also at hostnames[${first}])`,
      });
    else seenHosts.set(h, i);
  });
  (spec.rules ?? []).forEach((rule, ri) => {
    checkRule(rule, ['spec', 'rules', ri], errors);
    checkTraffic(rule.loadBalancer, rule.timeouts, ['spec', 'rules', ri], errors);
  });
  if (spec.catalog) {
    checkPathValue(spec.catalog.pathPrefix, ['spec', 'catalog', 'pathPrefix'], errors);
    checkTraffic(spec.catalog.loadBalancer, spec.catalog.timeouts, ['spec', 'catalog'], errors);
    if (spec.catalog.failover)
      checkFailover(spec.catalog.failover.datacenters, undefined, ['spec', 'catalog', 'failover'], errors);
  }
  checkRouteTls(spec.tls, spec.hostnames, errors);
  return errors.length > 0 ? { ok: false, errors } : { ok: true, route };
}

export function validateCatalogFile(raw: unknown): { ok: true; value: CatalogFile } | InvalidRoute {
  const value = Value.Default(CatalogFile, structuredClone(raw)) as CatalogFile;
  const errors = schemaErrors(catalogCheck, value);
  return errors.length > 0 ? { ok: false, errors } : { ok: true, value };
}

/** `namespace/name` of a route-like object, with `default` as the namespace when none is given. */
export function routeKey(raw: unknown): string {
  const meta = (raw as { metadata?: { name?: unknown; namespace?: unknown } } | null)?.metadata;
  const name = typeof meta?.name === 'string' ? meta.name : '(unnamed)';
  const ns = typeof meta?.namespace === 'string' ? meta.namespace : 'default';
  return `${ns}/${name}`;
}
