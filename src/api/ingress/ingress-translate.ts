/**
 * Ingresses → GatewayRoutes (the raw objects compile validates), one pure function shared by the Ingress source
 * (src/control/sources/ingress/) and `edgegate migrate`. It reads every served Ingress at once because ingress-nginx's
 * semantics cross Ingresses: a canary Ingress joins the main Ingress of the same host and path, and `use-regex` or
 * `rewrite-target` on one Ingress makes every path of that host a regex. docs/ingress.md describes the mapping.
 *
 * One GatewayRoute per Ingress and host (`<name>.<host>`, `*` → `wildcard`; rules without a host: `<name>`), one rule
 * per path, the Ingress's annotations applied to each rule; spec.defaultBackend is a catch-all route
 * (`<name>.default-backend`) and the last rule of each of the Ingress's hosts.
 */
import type { GatewayRouteSpec, RouteBackend, RouteFilter, RouteRule } from '../gateway-route.ts';
import { regexSyntaxError } from '../linear-regex.ts';
import { type IngressNote, type IngressSettings, parseAnnotations } from './ingress-annotations.ts';
import { type IngressBackend, type IngressObject, ingressKey } from './ingress-types.ts';

export interface TranslateOptions {
  /** Prefix of every route name: the Ingress source uses `ingress.` (no clash with a GatewayRoute of the name). */
  namePrefix?: string;
  /** Copy uid and creationTimestamp into the routes (live source: precedence and fail-closed fallback). */
  keepIdentity?: boolean;
  /**
   * Translate refused Ingresses too, without what was refused (`edgegate migrate`, which prints the refusal next to
   * them); the Ingress source never serves them.
   */
  includeRefused?: boolean;
}

export interface TranslatedRoute {
  apiVersion: 'edgegate.io/v1alpha1';
  kind: 'GatewayRoute';
  metadata: { name: string; namespace: string; creationTimestamp?: string; uid?: string };
  spec: GatewayRouteSpec;
}

export interface IngressResult {
  /** `namespace/name` of the Ingress. */
  ingress: string;
  uid?: string;
  notes: IngressNote[];
  /** Not served (a refused annotation). */
  refused: boolean;
  /** `namespace/name` of the routes made from it. */
  routes: string[];
}

export interface Translation {
  routes: TranslatedRoute[];
  /** One per Ingress in the input, in input order. */
  results: IngressResult[];
}

/** ingress-nginx's default http-redirect-code for ssl-redirect (ConfigMap `http-redirect-code`). */
export const SSL_REDIRECT_CODE = 308;
const MAX_RULES = 64;
const MAX_NAME = 253;

interface Parsed {
  ing: IngressObject;
  key: string;
  namespace: string;
  name: string;
  created: string | undefined;
  settings: IngressSettings;
  result: IngressResult;
}

/** One path of a main Ingress, before canaries join it. */
interface PathRule {
  host: string;
  /** The match and the rule built from the Ingress's settings. */
  rule: RouteRule;
  /** Extra rules in front of it (canary by header / cookie). */
  before: RouteRule[];
  pathKey: string;
  owner: Parsed;
}

function isoOf(t: string | Date | undefined): string | undefined {
  if (t instanceof Date) return t.toISOString();
  return typeof t === 'string' ? t : undefined;
}

function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}

/** A route name from parts: DNS-subdomain safe, at most 253 characters (a digest replaces the tail). */
function routeName(parts: string[]): string {
  const name = parts
    .filter(Boolean)
    .join('.')
    .replace(/\*/g, 'wildcard')
    .toLowerCase()
    .replace(/[^a-z0-9.-]/g, '-');
  if (name.length <= MAX_NAME) return name;
  return `${name.slice(0, MAX_NAME - 9).replace(/[.-]+$/, '')}-${fnv1a(name)}`;
}

function serviceBackend(b: IngressBackend | undefined, s: IngressSettings): RouteBackend | string {
  if (!b) return 'no backend';
  if (b.resource !== undefined || !b.service) return 'resource backends are not supported (only Services)';
  const name = b.service.name;
  const port = b.service.port?.number ?? b.service.port?.name;
  if (!name || port === undefined || port === '') return 'the backend Service needs a name and a port';
  const out: RouteBackend = { service: { name, port } };
  if (s.connectTimeout) out.pool = { connectTimeout: s.connectTimeout };
  if (s.backendProtocol === 'HTTPS' || s.backendProtocol === 'GRPCS') {
    out.tls = s.proxySslName ? { serverName: s.proxySslName } : {};
    if (s.backendProtocol === 'GRPCS') out.protocol = 'h2';
  }
  return out;
}

/** The settings every rule of the Ingress carries (not the match, not the backends). */
function ruleSettings(s: IngressSettings, httpsRedirect: boolean): Omit<RouteRule, 'matches' | 'backends'> {
  const rule: Omit<RouteRule, 'matches' | 'backends'> = {};
  if (s.readTimeout) rule.timeouts = { responseHeaders: s.readTimeout, idle: s.readTimeout };
  if (s.retryAttempts !== undefined || s.retryOn) {
    rule.retry = {};
    if (s.retryAttempts !== undefined) rule.retry.attempts = s.retryAttempts;
    if (s.retryOn && s.retryOn.length > 0) rule.retry.retryOn = s.retryOn;
  }
  const policies: NonNullable<RouteRule['policies']> = {};
  if (s.ipAllow) policies.ipAllow = s.ipAllow;
  if (s.ipDeny) policies.ipDeny = s.ipDeny;
  if (s.rateLimit) policies.rateLimit = { ...s.rateLimit, key: 'ClientAddress' };
  if (s.externalAuth) policies.externalAuth = { ...s.externalAuth };
  if (Object.keys(policies).length > 0) rule.policies = policies;
  if (s.affinityCookie)
    rule.loadBalancer = { type: 'ConsistentHash', consistentHash: { cookie: s.affinityCookie } };
  if (s.maxBodyBytes !== undefined) rule.maxRequestBodySize = s.maxBodyBytes;
  if (httpsRedirect) rule.httpsRedirect = SSL_REDIRECT_CODE;
  return rule;
}

function requestFilters(s: IngressSettings, pathRewrite: RouteFilter['urlRewrite']): RouteFilter[] {
  const filters: RouteFilter[] = [];
  const rewrite: NonNullable<RouteFilter['urlRewrite']> = { ...(pathRewrite ?? {}) };
  if (s.upstreamVhost) rewrite.hostname = s.upstreamVhost;
  if (rewrite.hostname || rewrite.path) filters.push({ type: 'URLRewrite', urlRewrite: rewrite });
  if (s.xForwardedPrefix)
    filters.push({
      type: 'RequestHeaderModifier',
      requestHeaderModifier: { set: [{ name: 'X-Forwarded-Prefix', value: s.xForwardedPrefix }] },
    });
  if (s.cors) filters.push({ type: 'CORS', cors: { ...s.cors } });
  return filters;
}

function redirectFilter(s: IngressSettings): RouteFilter | undefined {
  const r = s.redirect;
  if (!r) return undefined;
  return {
    type: 'RequestRedirect',
    requestRedirect: {
      scheme: r.scheme,
      hostname: r.hostname,
      ...(r.port !== undefined ? { port: r.port } : {}),
      path: { type: 'ReplaceFullPath', replaceFullPath: r.path },
      statusCode: r.statusCode,
    },
  };
}

/** Builds one rule: `match` → backend, with the Ingress's filters and settings. */
function buildRule(
  match: NonNullable<RouteRule['matches']>[number],
  backend: RouteBackend,
  s: IngressSettings,
  httpsRedirect: boolean,
  rewrite: RouteFilter['urlRewrite'],
): RouteRule {
  const rule: RouteRule = { matches: [match], ...ruleSettings(s, httpsRedirect) };
  const redirect = redirectFilter(s);
  if (redirect) {
    rule.filters = [redirect];
    delete rule.timeouts;
    delete rule.retry;
    delete rule.loadBalancer;
    delete rule.maxRequestBodySize;
    return rule;
  }
  const filters = requestFilters(s, rewrite);
  if (filters.length > 0) rule.filters = filters;
  rule.backends = [backend];
  return rule;
}

function note(p: Parsed, message: string, kind: IngressNote['kind'] = 'unsupported'): void {
  p.result.notes.push({ kind, message });
}

function sortByCreation(list: Parsed[]): Parsed[] {
  const cmp = (x: string, y: string) => (x < y ? -1 : x > y ? 1 : 0);
  return list.sort((a, b) => cmp(a.created ?? '\uffff', b.created ?? '\uffff') || cmp(a.key, b.key));
}

/** Translates the Ingresses edgegate serves (class selection is the caller's: ingress-class.ts). */
export function translateIngresses(ingresses: IngressObject[], opts: TranslateOptions = {}): Translation {
  const prefix = opts.namePrefix ?? '';
  const parsed: Parsed[] = ingresses.map((ing) => {
    const { settings, notes, refused } = parseAnnotations(ing.metadata?.annotations);
    const uid = ing.metadata?.uid;
    return {
      ing,
      key: ingressKey(ing),
      namespace: ing.metadata?.namespace ?? 'default',
      name: ing.metadata?.name ?? '',
      created: isoOf(ing.metadata?.creationTimestamp),
      settings,
      result: { ingress: ingressKey(ing), ...(uid ? { uid } : {}), notes, refused, routes: [] },
    };
  });
  const live = sortByCreation(parsed.filter((p) => opts.includeRefused || !p.result.refused));
  const mains = live.filter((p) => !p.settings.canary);
  const canaries = live.filter((p) => p.settings.canary);

  // ingress-nginx: use-regex or rewrite-target on any Ingress of a host makes every path of that host a regex.
  const regexHosts = new Set<string>();
  for (const p of live)
    if (p.settings.useRegex || p.settings.rewriteTarget !== undefined)
      for (const r of p.ing.spec?.rules ?? []) regexHosts.add(r.host ?? '');

  /** Each main Ingress's path rules, by host. */
  const pathRules = new Map<Parsed, Map<string, PathRule[]>>();
  const addRule = (pr: PathRule) => {
    let hosts = pathRules.get(pr.owner);
    if (!hosts) {
      hosts = new Map();
      pathRules.set(pr.owner, hosts);
    }
    const list = hosts.get(pr.host);
    if (list) list.push(pr);
    else hosts.set(pr.host, [pr]);
  };
  const byHostPath = new Map<string, PathRule>();
  const hostsOf = new Map<Parsed, string[]>();
  /** `ingress key\0host` → that host's plain-HTTP requests are redirected to HTTPS. */
  const httpsHosts = new Set<string>();
  for (const p of mains) {
    const s = p.settings;
    const tlsHosts = new Set<string>();
    let tlsAll = false;
    for (const t of p.ing.spec?.tls ?? []) {
      if (!t.hosts || t.hosts.length === 0) tlsAll = true;
      for (const h of t.hosts ?? []) tlsHosts.add(h);
    }
    const hosts: string[] = [];
    for (const r of p.ing.spec?.rules ?? []) {
      const host = r.host ?? '';
      if (!hosts.includes(host)) hosts.push(host);
      const regex = regexHosts.has(host);
      const redirectHttps =
        s.forceSslRedirect || (s.sslRedirect !== false && host !== '' && (tlsAll || tlsHosts.has(host)));
      if (redirectHttps) httpsHosts.add(`${p.key}\u0000${host}`);
      for (const path of r.http?.paths ?? []) {
        const value = path.path || '/';
        const type = path.pathType ?? 'ImplementationSpecific';
        const backend = serviceBackend(path.backend, s);
        if (typeof backend === 'string') {
          note(p, `host ${host || '*'} path ${value}: ${backend}; the path is not served`);
          continue;
        }
        let match: NonNullable<RouteRule['matches']>[number];
        let rewrite: RouteFilter['urlRewrite'];
        if (type === 'Exact') {
          match = { path: { type: 'Exact', value } };
          // nginx rewrites the whole URI of an exact location to the target; its regex has no groups.
          if (s.rewriteTarget !== undefined)
            rewrite = {
              path: {
                type: 'ReplaceFullPath',
                replaceFullPath: s.rewriteTarget.replace(/\$[1-9]/g, '') || '/',
              },
            };
        } else if (regex) {
          // The path must be a regex on its own, so that `(?:…)` groups exactly what the author wrote.
          const why = regexSyntaxError(value);
          if (why) {
            note(
              p,
              `host ${host || '*'} path ${value}: invalid regular expression (${why}); the path is not served`,
            );
            continue;
          }
          // ingress-nginx writes `location ~* "^<path>"`: anchored at the start only.
          match = { path: { type: 'RegularExpression', value: `(?:${value}).*` } };
          if (s.rewriteTarget !== undefined) {
            // nginx substitutes an empty string for a group the path does not have.
            const groups = new RegExp(`${value}|`).exec('')!.length - 1;
            const target = s.rewriteTarget.replace(/\$([1-9])/g, (m, n: string) =>
              Number(n) <= groups ? m : '',
            );
            rewrite = { path: { type: 'ReplaceRegexMatch', replaceRegexMatch: target || '/' } };
          }
        } else {
          if (type !== 'Prefix' && type !== 'ImplementationSpecific') {
            note(p, `host ${host || '*'} path ${value}: unknown pathType ${type}; the path is not served`);
            continue;
          }
          match = { path: { type: 'PathPrefix', value } };
        }
        const pr: PathRule = {
          host,
          rule: buildRule(match, backend, s, redirectHttps, rewrite),
          before: [],
          pathKey: `${host}\u0000${value}`,
          owner: p,
        };
        addRule(pr);
        // The oldest main Ingress of a host and path is the one a canary joins (ingress-nginx merges by location).
        if (!byHostPath.has(pr.pathKey)) byHostPath.set(pr.pathKey, pr);
      }
      if (s.appRoot !== undefined) {
        addRule({
          host,
          rule: {
            matches: [{ path: { type: 'Exact', value: '/' } }],
            filters: [
              {
                type: 'RequestRedirect',
                requestRedirect: {
                  path: { type: 'ReplaceFullPath', replaceFullPath: s.appRoot },
                  statusCode: 302,
                },
              },
            ],
            ...(redirectHttps ? { httpsRedirect: SSL_REDIRECT_CODE } : {}),
          },
          before: [],
          pathKey: `${host}\u0000app-root`,
          owner: p,
        });
      }
    }
    hostsOf.set(p, hosts);
  }

  // Canaries join the main rule of the same host and path.
  const joined = new Set<PathRule>();
  for (const c of canaries) {
    const cs = c.settings.canary!;
    let any = false;
    for (const r of c.ing.spec?.rules ?? []) {
      const host = r.host ?? '';
      for (const path of r.http?.paths ?? []) {
        const value = path.path || '/';
        const main = byHostPath.get(`${host}\u0000${value}`);
        if (!main) {
          note(
            c,
            `canary for host ${host || '*'} path ${value}: no main Ingress serves that host and path; ignored`,
          );
          continue;
        }
        if (main.owner.namespace !== c.namespace) {
          note(
            c,
            `canary for host ${host || '*'} path ${value}: the main Ingress is in another namespace; ignored`,
          );
          continue;
        }
        if (joined.has(main)) {
          note(
            c,
            `canary for host ${host || '*'} path ${value}: an older canary already joined that path; ignored`,
          );
          continue;
        }
        const canaryBackend = serviceBackend(path.backend, main.owner.settings);
        if (typeof canaryBackend === 'string' || !main.rule.backends) {
          note(
            c,
            `canary for host ${host || '*'} path ${value}: ${typeof canaryBackend === 'string' ? canaryBackend : 'the main path redirects'}; ignored`,
          );
          continue;
        }
        joined.add(main);
        any = true;
        const mainBackends = main.rule.backends;
        const match = main.rule.matches![0]!;
        const variant = (
          extra: Partial<NonNullable<RouteRule['matches']>[number]>,
          backends: RouteBackend[],
        ) => ({
          ...main.rule,
          matches: [{ ...match, ...extra }],
          backends,
        });
        if (cs.header) {
          if (cs.headerValue !== undefined)
            main.before.push(
              variant({ headers: [{ type: 'Exact', name: cs.header, value: cs.headerValue }] }, [
                canaryBackend,
              ]),
            );
          else if (cs.headerPattern !== undefined)
            main.before.push(
              variant(
                { headers: [{ type: 'RegularExpression', name: cs.header, value: cs.headerPattern }] },
                [canaryBackend],
              ),
            );
          else {
            main.before.push(
              variant({ headers: [{ type: 'Exact', name: cs.header, value: 'always' }] }, [canaryBackend]),
            );
            main.before.push(
              variant({ headers: [{ type: 'Exact', name: cs.header, value: 'never' }] }, mainBackends),
            );
          }
        }
        if (cs.cookie) {
          main.before.push(
            variant({ cookies: [{ type: 'Exact', name: cs.cookie, value: 'always' }] }, [canaryBackend]),
          );
          main.before.push(
            variant({ cookies: [{ type: 'Exact', name: cs.cookie, value: 'never' }] }, mainBackends),
          );
        }
        if (cs.weight !== undefined && cs.weight > 0) {
          const rest = cs.weightTotal - cs.weight;
          main.rule.backends = [
            ...(rest > 0 ? mainBackends.map((b) => ({ ...b, weight: rest })) : []),
            { ...canaryBackend, weight: cs.weight },
          ];
        }
      }
    }
    if (!any) note(c, 'the canary joins no main Ingress: nothing of it is served');
    for (const [k, v] of Object.entries(c.ing.metadata?.annotations ?? {}))
      if (k.startsWith('nginx.ingress.kubernetes.io/') && !k.includes('/canary') && v !== undefined)
        c.result.notes.push({
          annotation: k,
          kind: 'unsupported',
          message: 'ignored on a canary Ingress: the main Ingress’s annotations apply (as in ingress-nginx)',
        });
  }

  // Routes: per main Ingress and host; regex rules longest path first (ingress-nginx's location order).
  const routes: TranslatedRoute[] = [];
  const emit = (
    p: Parsed,
    nameParts: string[],
    hostnames: string[] | undefined,
    rules: RouteRule[],
    tls?: GatewayRouteSpec['tls'],
  ) => {
    for (let i = 0; i < rules.length; i += MAX_RULES) {
      const chunk = rules.slice(i, i + MAX_RULES);
      const name = routeName([
        `${prefix}${p.name}`,
        ...nameParts,
        ...(i > 0 ? [`part${i / MAX_RULES + 1}`] : []),
      ]);
      const spec: GatewayRouteSpec = { ...(hostnames ? { hostnames } : {}), rules: chunk };
      if (tls && tls.length > 0) spec.tls = tls;
      const metadata: TranslatedRoute['metadata'] = { name, namespace: p.namespace };
      if (opts.keepIdentity) {
        if (p.created) metadata.creationTimestamp = p.created;
        if (p.ing.metadata?.uid) metadata.uid = p.ing.metadata.uid;
      }
      routes.push({ apiVersion: 'edgegate.io/v1alpha1', kind: 'GatewayRoute', metadata, spec });
      p.result.routes.push(`${p.namespace}/${name}`);
    }
  };
  for (const p of mains) {
    const s = p.settings;
    const def = p.ing.spec?.defaultBackend;
    const defBackend = def ? serviceBackend(def, s) : undefined;
    if (typeof defBackend === 'string') note(p, `defaultBackend: ${defBackend}; not served`);
    for (const host of hostsOf.get(p) ?? []) {
      const own = pathRules.get(p)?.get(host) ?? [];
      const lengthOf = (r: RouteRule) => r.matches?.[0]?.path?.value.length ?? 0;
      const ordered = [...own].sort((a, b) => {
        const ra = a.rule.matches?.[0]?.path?.type === 'RegularExpression';
        const rb = b.rule.matches?.[0]?.path?.type === 'RegularExpression';
        return ra && rb ? lengthOf(b.rule) - lengthOf(a.rule) : 0;
      });
      const rules = ordered.flatMap((r) => [...r.before, r.rule]);
      if (defBackend && typeof defBackend !== 'string') {
        // Paths of this host no path matched go to the Ingress's default backend (a regex in a regex host: a
        // prefix `/` would outrank every regex).
        const hasRoot = own.some((r) => {
          const m = r.rule.matches?.[0]?.path;
          return m?.type === 'PathPrefix' && m.value === '/';
        });
        if (!hasRoot) {
          const match = regexHosts.has(host)
            ? { path: { type: 'RegularExpression' as const, value: '/.*' } }
            : { path: { type: 'PathPrefix' as const, value: '/' } };
          rules.push(buildRule(match, defBackend, s, httpsHosts.has(`${p.key}\u0000${host}`), undefined));
        }
      }
      if (rules.length === 0) continue;
      const tls: NonNullable<GatewayRouteSpec['tls']> = [];
      if (host !== '')
        for (const t of p.ing.spec?.tls ?? [])
          if (t.secretName && (!t.hosts || t.hosts.length === 0 || t.hosts.includes(host))) {
            tls.push({ hostnames: [host], secretName: t.secretName });
            break;
          }
      emit(p, host === '' ? [] : [host], host === '' ? undefined : [host], rules, tls);
    }
    if (defBackend && typeof defBackend !== 'string')
      emit(p, ['default-backend'], undefined, [
        buildRule({ path: { type: 'PathPrefix', value: '/' } }, defBackend, s, s.forceSslRedirect, undefined),
      ]);
    if (p.result.routes.length === 0 && !def)
      note(p, 'no rules with a Service backend and no defaultBackend: nothing is served');
  }
  for (const p of parsed) {
    if (p.result.refused) continue;
    p.result.notes.sort((x, y) => (x.annotation ?? '~').localeCompare(y.annotation ?? '~'));
  }
  return { routes, results: parsed.map((p) => p.result) };
}
