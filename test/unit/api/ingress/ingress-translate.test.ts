import { describe, expect, it } from 'vitest';
import { parseAnnotations } from '../../../../src/api/ingress/ingress-annotations.ts';
import { classSelection, servesIngress } from '../../../../src/api/ingress/ingress-class.ts';
import { translateIngresses } from '../../../../src/api/ingress/ingress-translate.ts';
import type { IngressObject } from '../../../../src/api/ingress/ingress-types.ts';
import { formatPath, validateRoute } from '../../../../src/api/validate.ts';
import { routePolicyErrors } from '../../../../src/compile/policies.ts';

const N = 'nginx.ingress.kubernetes.io/';

function ing(
  name: string,
  annotations: Record<string, string>,
  rules: { host?: string; paths: [string, string, string?][] }[],
  extra: Partial<NonNullable<IngressObject['spec']>> = {},
  created = '2026-01-01T00:00:00Z',
): IngressObject {
  return {
    metadata: { name, namespace: 'shop', annotations, creationTimestamp: created },
    spec: {
      ...extra,
      rules: rules.map((r) => ({
        ...(r.host ? { host: r.host } : {}),
        http: {
          paths: r.paths.map(([path, svc, type]) => ({
            path,
            pathType: type ?? 'Prefix',
            backend: { service: { name: svc, port: { number: 80 } } },
          })),
        },
      })),
    },
  };
}

/** Every translated route passes the GatewayRoute validator (schema, rules and policies). */
function valid(routes: ReturnType<typeof translateIngresses>['routes']) {
  for (const r of routes) {
    const v = validateRoute(r);
    const errors = v.ok ? routePolicyErrors(v.route.spec) : v.errors;
    expect(errors.map((e) => `${r.metadata.name} ${formatPath(e.path)}: ${e.message}`)).toEqual([]);
  }
}

describe('ingress class selection', () => {
  const classes = [
    { metadata: { name: 'edgegate' }, spec: { controller: 'edgegate.io/ingress-controller' } },
    { metadata: { name: 'nginx' }, spec: { controller: 'k8s.io/ingress-nginx' } },
  ];
  it('serves its own class, not another controller’s, not an unknown one', () => {
    const sel = classSelection(classes);
    expect(servesIngress({ spec: { ingressClassName: 'edgegate' } }, sel)).toBe(true);
    expect(servesIngress({ spec: { ingressClassName: 'nginx' } }, sel)).toBe(false);
    expect(servesIngress({ spec: { ingressClassName: 'missing' } }, sel)).toBe(false);
    expect(servesIngress({ spec: {} }, sel)).toBe(false);
  });
  it('the legacy annotation and the default class', () => {
    const sel = classSelection(classes, 'edgegate');
    const legacy = (v: string) => ({
      metadata: { annotations: { 'kubernetes.io/ingress.class': v } },
      spec: {},
    });
    expect(servesIngress(legacy('edgegate'), sel)).toBe(true);
    expect(servesIngress(legacy('nginx'), sel)).toBe(false);
    const withDefault = classSelection([
      ...classes.slice(1),
      {
        metadata: {
          name: 'edgegate',
          annotations: { 'ingressclass.kubernetes.io/is-default-class': 'true' },
          creationTimestamp: '2026-01-02T00:00:00Z',
        },
        spec: { controller: 'edgegate.io/ingress-controller' },
      },
    ]);
    expect(servesIngress({ spec: {} }, withDefault)).toBe(true);
    // ingressClassName wins over the default class.
    expect(servesIngress({ spec: { ingressClassName: 'nginx' } }, withDefault)).toBe(false);
  });
});

describe('translateIngresses', () => {
  it('hosts, Exact / Prefix / ImplementationSpecific paths, TLS with ssl-redirect by default', () => {
    const t = translateIngresses([
      ing(
        'web',
        {},
        [
          {
            host: 'shop.example.com',
            paths: [
              ['/api', 'api'],
              ['/health', 'api', 'Exact'],
              ['/x', 'x', 'ImplementationSpecific'],
            ],
          },
        ],
        { tls: [{ hosts: ['shop.example.com'], secretName: 'shop-tls' }] },
      ),
    ]);
    valid(t.routes);
    expect(t.routes).toHaveLength(1);
    const spec = t.routes[0]!.spec;
    expect(t.routes[0]!.metadata.name).toBe('web.shop.example.com');
    expect(spec.hostnames).toEqual(['shop.example.com']);
    expect(spec.tls).toEqual([{ hostnames: ['shop.example.com'], secretName: 'shop-tls' }]);
    expect(spec.rules!.map((r) => r.matches![0]!.path)).toEqual([
      { type: 'PathPrefix', value: '/api' },
      { type: 'Exact', value: '/health' },
      { type: 'PathPrefix', value: '/x' },
    ]);
    expect(spec.rules!.every((r) => r.httpsRedirect === 308)).toBe(true);
  });

  it('rewrite-target with capture groups makes the host’s paths regexes (ingress-nginx)', () => {
    const t = translateIngresses([
      ing('rw', { [`${N}rewrite-target`]: '/$2', [`${N}use-regex`]: 'true' }, [
        { host: 'a.example.com', paths: [['/something(/|$)(.*)', 'svc', 'ImplementationSpecific']] },
      ]),
      ing('other', {}, [{ host: 'a.example.com', paths: [['/plain', 'svc']] }]),
    ]);
    valid(t.routes);
    const rw = t.routes.find((r) => r.metadata.name === 'rw.a.example.com')!;
    expect(rw.spec.rules![0]!.matches![0]!.path).toEqual({
      type: 'RegularExpression',
      value: '(?:/something(/|$)(.*)).*',
    });
    expect(rw.spec.rules![0]!.filters).toEqual([
      { type: 'URLRewrite', urlRewrite: { path: { type: 'ReplaceRegexMatch', replaceRegexMatch: '/$2' } } },
    ]);
    // The other Ingress of the host: its Prefix path is a regex too.
    const other = t.routes.find((r) => r.metadata.name === 'other.a.example.com')!;
    expect(other.spec.rules![0]!.matches![0]!.path!.type).toBe('RegularExpression');
  });

  it('maps timeouts, retries, rate limits, IP ranges, affinity, vhost, protocol, prefix header, auth', () => {
    const t = translateIngresses([
      ing(
        'all',
        {
          [`${N}proxy-connect-timeout`]: '3',
          [`${N}proxy-read-timeout`]: '120',
          [`${N}proxy-next-upstream-tries`]: '3',
          [`${N}limit-rps`]: '10',
          [`${N}whitelist-source-range`]: '10.0.0.0/8, 192.168.0.0/16',
          [`${N}denylist-source-range`]: '10.1.0.0/16',
          [`${N}affinity`]: 'cookie',
          [`${N}session-cookie-name`]: 'route',
          [`${N}upstream-vhost`]: 'internal.svc',
          [`${N}backend-protocol`]: 'HTTPS',
          [`${N}x-forwarded-prefix`]: '/shop',
          [`${N}auth-url`]: 'http://auth.shop.svc/check',
          [`${N}auth-response-headers`]: 'X-User',
        },
        [{ host: 'b.example.com', paths: [['/', 'svc']] }],
      ),
    ]);
    valid(t.routes);
    const r = t.routes[0]!.spec.rules![0]!;
    expect(r.backends).toEqual([
      { service: { name: 'svc', port: 80 }, pool: { connectTimeout: '3s' }, tls: {} },
    ]);
    expect(r.timeouts).toEqual({ responseHeaders: '120s', idle: '120s' });
    expect(r.retry).toEqual({ attempts: 2 });
    expect(r.policies).toEqual({
      ipAllow: ['10.0.0.0/8', '192.168.0.0/16'],
      ipDeny: ['10.1.0.0/16'],
      rateLimit: { requests: 10, period: '1s', burst: 50, key: 'ClientAddress' },
      externalAuth: {
        url: 'http://auth.shop.svc/check',
        requestHeaders: ['Authorization', 'Cookie'],
        responseHeaders: ['X-User'],
      },
    });
    expect(r.loadBalancer).toEqual({ type: 'ConsistentHash', consistentHash: { cookie: 'route' } });
    expect(r.filters).toEqual([
      { type: 'URLRewrite', urlRewrite: { hostname: 'internal.svc' } },
      {
        type: 'RequestHeaderModifier',
        requestHeaderModifier: { set: [{ name: 'X-Forwarded-Prefix', value: '/shop' }] },
      },
    ]);
    expect(t.results[0]!.notes).toEqual([]);
  });

  it('canary by weight, header (always/never, value, pattern) and cookie joins the main path', () => {
    const main = ing('main', {}, [{ host: 'c.example.com', paths: [['/', 'stable']] }]);
    const canary = ing(
      'canary',
      {
        [`${N}canary`]: 'true',
        [`${N}canary-weight`]: '20',
        [`${N}canary-by-header`]: 'X-Canary',
        [`${N}canary-by-cookie`]: 'canary',
      },
      [{ host: 'c.example.com', paths: [['/', 'preview']] }],
      {},
      '2026-01-02T00:00:00Z',
    );
    const t = translateIngresses([canary, main]);
    valid(t.routes);
    expect(t.routes).toHaveLength(1);
    const rules = t.routes[0]!.spec.rules!;
    expect(
      rules.map((r) => [
        r.matches![0]!.headers ?? r.matches![0]!.cookies ?? [],
        r.backends!.map((b) => `${b.service!.name}:${b.weight ?? 1}`),
      ]),
    ).toEqual([
      [[{ type: 'Exact', name: 'X-Canary', value: 'always' }], ['preview:1']],
      [[{ type: 'Exact', name: 'X-Canary', value: 'never' }], ['stable:1']],
      [[{ type: 'Exact', name: 'canary', value: 'always' }], ['preview:1']],
      [[{ type: 'Exact', name: 'canary', value: 'never' }], ['stable:1']],
      [[], ['stable:80', 'preview:20']],
    ]);
    const byValue = translateIngresses([
      main,
      ing(
        'c2',
        {
          [`${N}canary`]: 'true',
          [`${N}canary-by-header`]: 'X-Region',
          [`${N}canary-by-header-pattern`]: 'eu-.*',
        },
        [{ host: 'c.example.com', paths: [['/', 'preview']] }],
      ),
    ]);
    valid(byValue.routes);
    expect(byValue.routes[0]!.spec.rules![0]!.matches![0]!.headers).toEqual([
      { type: 'RegularExpression', name: 'X-Region', value: 'eu-.*' },
    ]);
  });

  it('a canary with no main path is reported, not served', () => {
    const t = translateIngresses([
      ing('lonely', { [`${N}canary`]: 'true', [`${N}canary-weight`]: '50' }, [
        { host: 'z.example.com', paths: [['/', 'p']] },
      ]),
    ]);
    expect(t.routes).toEqual([]);
    expect(t.results[0]!.notes.map((n) => n.message).join('\n')).toMatch(/no main Ingress serves/);
  });

  it('default backend: a catch-all route and the last rule of each host', () => {
    const t = translateIngresses([
      ing('d', {}, [{ host: 'd.example.com', paths: [['/api', 'api']] }], {
        defaultBackend: { service: { name: 'fallback', port: { name: 'http' } } },
      }),
    ]);
    valid(t.routes);
    expect(t.routes.map((r) => r.metadata.name)).toEqual(['d.d.example.com', 'd.default-backend']);
    expect(t.routes[0]!.spec.rules!.at(-1)!.backends).toEqual([
      { service: { name: 'fallback', port: 'http' } },
    ]);
    expect(t.routes[1]!.spec.hostnames).toBeUndefined();
  });

  it('app-root, permanent and temporal redirects', () => {
    const t = translateIngresses([
      ing('root', { [`${N}app-root`]: '/app' }, [{ host: 'e.example.com', paths: [['/', 'svc']] }]),
      ing('moved', { [`${N}permanent-redirect`]: 'https://new.example.com:8443/landing' }, [
        { host: 'f.example.com', paths: [['/', 'svc']] },
      ]),
      ing('tmp', { [`${N}temporal-redirect`]: 'http://g2.example.com/' }, [
        { host: 'g.example.com', paths: [['/', 'svc']] },
      ]),
    ]);
    valid(t.routes);
    const byName = Object.fromEntries(t.routes.map((r) => [r.metadata.name, r.spec.rules!]));
    expect(byName['root.e.example.com']![1]!.filters![0]!.requestRedirect).toEqual({
      path: { type: 'ReplaceFullPath', replaceFullPath: '/app' },
      statusCode: 302,
    });
    expect(byName['moved.f.example.com']![0]!.filters![0]!.requestRedirect).toEqual({
      scheme: 'https',
      hostname: 'new.example.com',
      port: 8443,
      path: { type: 'ReplaceFullPath', replaceFullPath: '/landing' },
      statusCode: 301,
    });
    expect(byName['tmp.g.example.com']![0]!.filters![0]!.requestRedirect!.statusCode).toBe(302);
  });

  it('snippets and unsupported access control refuse the Ingress; other unknowns are reported and served', () => {
    for (const a of [
      'configuration-snippet',
      'server-snippet',
      'auth-snippet',
      'stream-snippet',
      'auth-type',
    ]) {
      const t = translateIngresses([
        ing('s', { [`${N}${a}`]: 'x' }, [{ host: 'h.example.com', paths: [['/', 'svc']] }]),
      ]);
      expect(t.routes).toEqual([]);
      expect(t.results[0]!.refused).toBe(true);
      expect(t.results[0]!.notes[0]!.annotation).toBe(`${N}${a}`);
    }
    const served = translateIngresses([
      ing('u', { [`${N}cors-max-age`]: '60', [`${N}proxy-buffering`]: 'on' }, [
        { host: 'h.example.com', paths: [['/', 'svc']] },
      ]),
    ]);
    expect(served.routes).toHaveLength(1);
    expect(served.results[0]!.notes.map((n) => [n.annotation, n.kind])).toEqual([
      [`${N}cors-max-age`, 'unsupported'],
      [`${N}proxy-buffering`, 'unsupported'],
    ]);
    expect(served.results[0]!.notes[0]!.message).toContain('without enable-cors');
  });

  it('enable-cors becomes a CORS filter with ingress-nginx defaults, each cors-* annotation overriding one', () => {
    const corsOf = (a: Record<string, string>) => {
      const t = translateIngresses([ing('c', a, [{ host: 'h.example.com', paths: [['/', 'svc']] }])]);
      valid(t.routes);
      return t.routes[0]?.spec.rules?.[0]?.filters?.find((f) => f.type === 'CORS')?.cors;
    };
    expect(corsOf({ [`${N}enable-cors`]: 'true' })).toEqual({
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
    });
    expect(
      corsOf({
        [`${N}enable-cors`]: 'true',
        [`${N}cors-allow-origin`]: 'https://a.example, https://*.b.example:8443',
        [`${N}cors-allow-methods`]: 'get, post',
        [`${N}cors-allow-headers`]: 'X-Token',
        [`${N}cors-expose-headers`]: 'X-Total, X-Page',
        [`${N}cors-allow-credentials`]: 'false',
        [`${N}cors-max-age`]: '90',
      }),
    ).toEqual({
      allowOrigins: ['https://a.example', 'https://*.b.example:8443'],
      allowMethods: ['GET', 'POST'],
      allowHeaders: ['X-Token'],
      exposeHeaders: ['X-Total', 'X-Page'],
      allowCredentials: false,
      maxAge: 90,
    });
    expect(
      corsOf({ [`${N}enable-cors`]: 'false', [`${N}cors-allow-origin`]: 'https://a.example' }),
    ).toBeUndefined();
    // Invalid values refuse the Ingress, naming the annotation (as for every supported annotation).
    for (const [k, v] of [
      ['cors-allow-origin', 'https://a.example/path'],
      ['cors-allow-origin', 'javascript:alert(1)'],
      ['cors-allow-methods', 'GET, FETCH'],
      ['cors-allow-headers', 'X-A\r\nX-B: 1'],
      ['cors-max-age', '-1'],
      ['cors-allow-credentials', 'maybe'],
      ['enable-cors', 'yes please'],
    ]) {
      const p = parseAnnotations({ [`${N}enable-cors`]: 'true', [`${N}${k}`]: v! });
      expect(p.refused, `${k}: ${v}`).toBe(true);
      expect(p.notes.find((n) => n.kind === 'refused')?.annotation).toBe(`${N}${k}`);
    }
  });

  it('an invalid value of a supported annotation refuses the Ingress (fail closed)', () => {
    for (const [k, v] of [
      ['whitelist-source-range', 'not-a-cidr'],
      ['limit-rps', 'ten'],
      ['auth-url', 'https://$host/oauth2/auth'],
      ['proxy-read-timeout', 'soon'],
      ['backend-protocol', 'GRPC'],
      ['rewrite-target', 'http://elsewhere/'],
    ]) {
      const p = parseAnnotations({ [`${N}${k}`]: v! });
      expect(p.refused, k).toBe(true);
    }
  });

  it('more than 64 paths on a host are split over several routes', () => {
    const paths = Array.from({ length: 70 }, (_, i) => [`/p${i}`, 'svc'] as [string, string]);
    const t = translateIngresses([ing('big', {}, [{ host: 'big.example.com', paths }])]);
    valid(t.routes);
    expect(t.routes.map((r) => r.spec.rules!.length)).toEqual([64, 6]);
  });
});

describe('parseAnnotations: mappings without an e2e of their own', () => {
  it('proxy-next-upstream tokens, off, and what is reported', () => {
    const p = parseAnnotations({
      [`${N}proxy-next-upstream`]: 'error timeout http_502 http_500 non_idempotent',
    });
    expect(p.settings.retryOn).toEqual(['connect-failure', 'reset', 'timeout', '502']);
    expect(p.notes.map((n) => [n.annotation, n.kind])).toEqual([[`${N}proxy-next-upstream`, 'unsupported']]);
    expect(p.notes[0]!.message).toContain('http_500 non_idempotent');
    expect(parseAnnotations({ [`${N}proxy-next-upstream`]: 'off' }).settings.retryAttempts).toBe(0);
    // nginx counts the first try; 0 is unlimited, capped at edgegate's maximum.
    expect(parseAnnotations({ [`${N}proxy-next-upstream-tries`]: '0' }).settings.retryAttempts).toBe(10);
  });

  it('proxy-body-size in nginx units; 0 is no limit', () => {
    expect(parseAnnotations({ [`${N}proxy-body-size`]: '8m' }).settings.maxBodyBytes).toBe(8 * 1024 * 1024);
    expect(parseAnnotations({ [`${N}proxy-body-size`]: '512K' }).settings.maxBodyBytes).toBe(512 * 1024);
    expect(parseAnnotations({ [`${N}proxy-body-size`]: '100' }).settings.maxBodyBytes).toBe(100);
    expect(parseAnnotations({ [`${N}proxy-body-size`]: '0' }).settings.maxBodyBytes).toBeUndefined();
    expect(parseAnnotations({ [`${N}proxy-body-size`]: '8mb' }).refused).toBe(true);
  });

  it('proxy-send-timeout, limit-connections and session-cookie shaping are reported, served', () => {
    const p = parseAnnotations({
      [`${N}proxy-send-timeout`]: '30',
      [`${N}limit-connections`]: '5',
      [`${N}affinity`]: 'cookie',
      [`${N}session-cookie-expires`]: '3600',
    });
    expect(p.refused).toBe(false);
    expect(p.notes.map((n) => n.annotation)).toEqual([
      `${N}limit-connections`,
      `${N}proxy-send-timeout`,
      `${N}session-cookie-expires`,
    ]);
    expect(p.settings.affinityCookie).toBe('INGRESSCOOKIE');
  });

  it('backend-protocol GRPCS is TLS + h2; limit-rpm with a burst multiplier', () => {
    const t = translateIngresses([
      ing(
        'g',
        {
          [`${N}backend-protocol`]: 'GRPCS',
          [`${N}proxy-ssl-name`]: 'grpc.internal',
          [`${N}limit-rpm`]: '60',
          [`${N}limit-burst-multiplier`]: '2',
        },
        [{ host: 'g.example.com', paths: [['/', 'svc']] }],
      ),
    ]);
    valid(t.routes);
    const r = t.routes[0]!.spec.rules![0]!;
    expect(r.backends![0]).toEqual({
      service: { name: 'svc', port: 80 },
      tls: { serverName: 'grpc.internal' },
      protocol: 'h2',
    });
    expect(r.policies?.rateLimit).toEqual({ requests: 60, period: '1m', burst: 120, key: 'ClientAddress' });
  });
});

describe('GatewayRoute validation of the Ingress additions', () => {
  const route = (rule: unknown) => ({
    apiVersion: 'edgegate.io/v1alpha1',
    kind: 'GatewayRoute',
    metadata: { name: 'r', namespace: 'ns' },
    spec: { rules: [rule] },
  });
  const errors = (raw: unknown) => {
    const v = validateRoute(raw);
    return v.ok ? [] : v.errors.map((e) => `${formatPath(e.path)}: ${e.message}`);
  };
  const rewrite = (value: string) => ({
    type: 'URLRewrite',
    urlRewrite: { path: { type: 'ReplaceRegexMatch', replaceRegexMatch: value } },
  });
  const backends = [{ service: { name: 's', port: 80 } }];

  it('ReplaceRegexMatch needs RegularExpression matches and groups that exist', () => {
    expect(
      errors(
        route({
          matches: [{ path: { type: 'RegularExpression', value: '/a/(.*)' } }],
          filters: [rewrite('/$1')],
          backends,
        }),
      ),
    ).toEqual([]);
    expect(
      errors(
        route({
          matches: [{ path: { type: 'PathPrefix', value: '/a' } }],
          filters: [rewrite('/$1')],
          backends,
        }),
      ),
    ).toEqual([
      'spec.rules[0].matches[0].path.type: ReplaceRegexMatch needs every match of the rule to be a RegularExpression path match',
    ]);
    expect(errors(route({ filters: [rewrite('/')], backends }))).toEqual([
      'spec.rules[0].matches: ReplaceRegexMatch needs every match of the rule to be a RegularExpression path match',
    ]);
    expect(
      errors(
        route({
          matches: [{ path: { type: 'RegularExpression', value: '/a/(.*)' } }],
          filters: [rewrite('/$2')],
          backends,
        }),
      ),
    ).toEqual([
      'spec.rules[0].filters[0].urlRewrite.path.replaceRegexMatch: $2 names a capture group that the path regex of match 0 does not have (it has 1)',
    ]);
  });

  it('httpsRedirect takes redirect codes only', () => {
    expect(errors(route({ httpsRedirect: 308, backends }))).toEqual([]);
    expect(errors(route({ httpsRedirect: 200, backends })).length).toBeGreaterThan(0);
  });
});

describe('regex mode paths', () => {
  it('a path that is not a regex on its own is not served (it could not be grouped as written)', () => {
    const t = translateIngresses([
      ing('r', { [`${N}use-regex`]: 'true' }, [
        {
          host: 'r.example.com',
          paths: [
            ['/x).*|(?:/admin', 'svc', 'ImplementationSpecific'],
            ['/ok/[0-9]+', 'svc', 'ImplementationSpecific'],
          ],
        },
      ]),
    ]);
    valid(t.routes);
    expect(t.routes[0]!.spec.rules!.map((r) => r.matches![0]!.path!.value)).toEqual(['(?:/ok/[0-9]+).*']);
    expect(t.results[0]!.notes[0]!.message).toMatch(/invalid regular expression/);
  });
});

describe('rewrite-target groups', () => {
  it('a group the path does not have becomes empty, as in nginx (the route stays valid)', () => {
    const t = translateIngresses([
      ing('g', { [`${N}rewrite-target`]: '/v2/$1/$2' }, [
        {
          host: 'g.example.com',
          paths: [
            ['/api/(.*)', 'svc', 'ImplementationSpecific'],
            ['/plain', 'svc'],
          ],
        },
      ]),
    ]);
    valid(t.routes);
    expect(t.routes[0]!.spec.rules!.map((r) => r.filters![0]!.urlRewrite!.path!.replaceRegexMatch)).toEqual([
      '/v2/$1/',
      '/v2//',
    ]);
  });
});
