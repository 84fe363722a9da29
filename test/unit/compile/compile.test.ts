import { describe, expect, it } from 'vitest';
import type { CatalogSnapshot, Instance } from '../../../src/api/catalog.ts';
import type { RouteSource } from '../../../src/api/route-source.ts';
import { compile } from '../../../src/compile/compile.ts';
import { RoutingTable } from '../../../src/table/index.ts';

const route = (name: string, spec: unknown, extra: Record<string, unknown> = {}): RouteSource => ({
  raw: {
    apiVersion: 'edgegate.io/v1alpha1',
    kind: 'GatewayRoute',
    metadata: { name, namespace: 'ns', ...extra },
    spec,
  },
  origin: `${name}.yaml:1`,
});

const inst = (port: number, tags: string[], health: Instance['health'] = 'passing'): Instance => ({
  id: `i${port}`,
  address: '127.0.0.1',
  port,
  tags,
  meta: {},
  health,
  weight: 1,
});

const catalog: CatalogSnapshot = {
  localDatacenter: 'dc1',
  datacenters: {
    dc1: {
      services: {
        echo: [inst(1, ['edge']), inst(2, ['edge'], 'critical'), inst(3, ['edge'], 'warning')],
        billing: [inst(11, ['v1']), inst(12, ['v2']), inst(13, ['v1', 'v2'])],
        hidden: [inst(21, [])],
      },
    },
    dc2: { services: { echo: [inst(31, ['edge'])] } },
    dc3: { services: {} },
  },
};

function matcher(routes: RouteSource[]) {
  const { table, statuses } = compile({ routes, catalog });
  const rt = new RoutingTable(table);
  const match = (
    host: string,
    path: string,
    headers: Record<string, string> = {},
    method = 'GET',
    query = '',
  ) => rt.match({ host, path, method, rawQuery: query, header: (n) => headers[n] })?.data;
  return { table, statuses, match, rt };
}

const be = (service: string, extra: Record<string, unknown> = {}) => ({ consul: { service, ...extra } });

describe('compile', () => {
  it('applies HTTPRoute precedence: exact host, Exact path, longest prefix, headers, then age and name', () => {
    const { match } = matcher([
      route('wild', {
        hostnames: ['*.example.com'],
        rules: [{ matches: [{ path: { type: 'Exact', value: '/a' } }], backends: [be('echo')] }],
      }),
      route('exact-host', {
        hostnames: ['api.example.com'],
        rules: [
          { name: 'short', matches: [{ path: { value: '/a' } }], backends: [be('echo')] },
          { name: 'long', matches: [{ path: { value: '/a/b' } }], backends: [be('echo')] },
          {
            name: 'hdr',
            matches: [{ path: { value: '/a' }, headers: [{ name: 'x-canary', value: '1' }] }],
            backends: [be('echo')],
          },
        ],
      }),
      route('any', { rules: [{ matches: [{ path: { value: '/' } }], backends: [be('echo')] }] }),
    ]);
    expect(match('api.example.com', '/a/b/c')?.ruleId).toBe('ns/exact-host#long');
    expect(match('api.example.com', '/a/x')?.ruleId).toBe('ns/exact-host#short');
    expect(match('api.example.com', '/a/x', { 'x-canary': '1' })?.ruleId).toBe('ns/exact-host#hdr');
    // prefix is element-wise: /ab is not under /a
    expect(match('api.example.com', '/ab')?.ruleId).toBe('ns/any#0');
    // falls through to a less specific host when the exact host has no matching rule
    expect(match('other.example.com', '/a')?.ruleId).toBe('ns/wild#0');
    expect(match('deep.other.example.com', '/a')?.ruleId).toBe('ns/wild#0');
    expect(match('example.com', '/a')?.ruleId).toBe('ns/any#0');
  });

  it('matches header RegularExpression and query-parameter matches (anchored, all of a match at once)', () => {
    const { match } = matcher([
      route('hdr', {
        hostnames: ['api.example.com'],
        rules: [
          {
            name: 'mobile',
            matches: [
              {
                path: { value: '/' },
                headers: [{ type: 'RegularExpression', name: 'user-agent', value: '(iPhone|Android).*' }],
              },
            ],
            backends: [be('echo')],
          },
          {
            name: 'beta',
            matches: [
              {
                path: { value: '/' },
                headers: [{ type: 'RegularExpression', name: 'x-version', value: 'v[2-9]' }],
                queryParams: [{ name: 'beta', value: '1' }],
              },
            ],
            backends: [be('echo')],
          },
          { name: 'rest', matches: [{ path: { value: '/' } }], backends: [be('echo')] },
        ],
      }),
    ]);
    expect(match('api.example.com', '/x', { 'user-agent': 'iPhone OS 17' })?.ruleId).toBe('ns/hdr#mobile');
    expect(match('api.example.com', '/x', { 'user-agent': 'Android 14' })?.ruleId).toBe('ns/hdr#mobile');
    // Anchored: the whole value must match (Gateway API semantics), not a substring.
    expect(match('api.example.com', '/x', { 'user-agent': 'Mozilla (iPhone)' })?.ruleId).toBe('ns/hdr#rest');
    expect(match('api.example.com', '/x', { 'x-version': 'v3' }, 'GET', 'beta=1')?.ruleId).toBe(
      'ns/hdr#beta',
    );
    expect(match('api.example.com', '/x', { 'x-version': 'v3' })?.ruleId).toBe('ns/hdr#rest');
    expect(match('api.example.com', '/x', { 'x-version': 'v1' }, 'GET', 'beta=1')?.ruleId).toBe(
      'ns/hdr#rest',
    );
    expect(match('api.example.com', '/x', { 'x-version': 'v3x' }, 'GET', 'beta=1')?.ruleId).toBe(
      'ns/hdr#rest',
    );
  });

  it('breaks ties by creation time, then namespace/name', () => {
    const spec = { rules: [{ matches: [{ path: { value: '/x' } }], backends: [be('echo')] }] };
    const { match } = matcher([
      route('b-older', spec, { creationTimestamp: '2024-01-01T00:00:00Z' }),
      route('a-newer', spec, { creationTimestamp: '2025-01-01T00:00:00Z' }),
    ]);
    expect(match('h', '/x')?.route).toBe('ns/b-older');
    const { match: byName } = matcher([route('b', spec), route('a', spec)]);
    expect(byName('h', '/x')?.route).toBe('ns/a');
  });

  it('selects instances by tags and health; passingOnly false adds warning, critical never', () => {
    const { table } = matcher([
      route('r', {
        rules: [
          { backends: [be('billing', { tags: ['v2'] })] },
          { matches: [{ path: { value: '/w' } }], backends: [be('echo', { passingOnly: false })] },
          { matches: [{ path: { value: '/p' } }], backends: [be('echo')] },
        ],
      }),
    ]);
    const ports = (id: string) =>
      table.clusters
        .find((c) => c.id.startsWith(id))!
        .endpoints.map((e) => e.port)
        .sort();
    expect(ports('consul:billing@dc1[v2]')).toEqual([12, 13]);
    expect(ports('consul:echo@dc1~warning')).toEqual([1, 3]);
    expect(ports('consul:echo@dc1|')).toEqual([1]);
  });

  it('builds the catalog route from services carrying the required tags, in allowed datacenters', () => {
    const { match, table } = matcher([route('cat', { catalog: { requiredTags: ['edge'] } })]);
    const entry = match('any', '/dc1/echo/x')!;
    expect(Object.keys(entry.catalog!.services).sort()).toEqual(['dc1', 'dc2', 'dc3']);
    expect(Object.keys(entry.catalog!.services.dc1!)).toEqual(['echo']);
    const echoDc2 = table.clusters.find((c) => c.id === entry.catalog!.services.dc2!.echo)!;
    expect(echoDc2.endpoints.map((e) => e.port)).toEqual([31]);
    const limited = matcher([route('cat', { catalog: { requiredTags: [], datacenters: ['dc2', 'dc9'] } })]);
    const e2 = limited.match('any', '/')!;
    expect(Object.keys(e2.catalog!.services)).toEqual(['dc2']);
    expect(limited.statuses[0]!.unresolved).toEqual(['datacenter dc9 is not known to the catalog']);
  });

  it('skips an invalid route with its errors and keeps the others', () => {
    const { statuses, match } = matcher([
      route('good', { rules: [{ backends: [be('echo')] }] }),
      route('bad', {
        hostnames: ['b.example.com'],
        rules: [{ matches: [{ path: { type: 'RegularExpression', value: '(' } }], backends: [be('echo')] }],
      }),
    ]);
    const bad = statuses.find((s) => s.route === 'ns/bad')!;
    expect(bad.accepted).toBe(false);
    expect(bad.errors[0]!.path).toEqual(['spec', 'rules', 0, 'matches', 0, 'path', 'value']);
    expect(match('b.example.com', '/x')?.route).toBe('ns/good');
  });

  it('reports unresolved backends and per-datacenter healthy counts', () => {
    const { statuses } = matcher([
      route('r', { rules: [{ backends: [be('nope', { datacenter: 'dc2' }), be('echo')] }] }),
    ]);
    expect(statuses[0]!.accepted).toBe(true);
    expect(statuses[0]!.unresolved).toEqual(['Consul service nope in datacenter dc2 not found']);
    expect(statuses[0]!.backends).toEqual([
      { ref: 'consul:echo@dc1', healthy: { dc1: 1 } },
      { ref: 'consul:nope@dc2', healthy: { dc2: 0 } },
    ]);
  });

  it('rejects the second of two routes with one name, whatever the input order', () => {
    const a = route('dup', { rules: [{ backends: [be('echo')] }] });
    const b = { ...route('dup', { rules: [{ backends: [be('billing')] }] }), origin: 'z.yaml:3' };
    for (const order of [
      [a, b],
      [b, a],
    ]) {
      const { statuses } = matcher(order);
      expect(statuses.map((s) => [s.origin, s.accepted])).toEqual([
        ['dup.yaml:1', true],
        ['z.yaml:3', false],
      ]);
    }
  });

  it('compiles redirects, rewrites and header edits into the entry', () => {
    const { match } = matcher([
      route('r', {
        rules: [
          {
            matches: [{ path: { type: 'Exact', value: '/old' } }],
            filters: [{ type: 'RequestRedirect', requestRedirect: { scheme: 'https', statusCode: 301 } }],
          },
          {
            filters: [
              {
                type: 'URLRewrite',
                urlRewrite: {
                  hostname: 'internal',
                  path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/v2' },
                },
              },
              {
                type: 'RequestHeaderModifier',
                requestHeaderModifier: { set: [{ name: 'X-A', value: '1' }], remove: ['X-B'] },
              },
            ],
            backends: [be('echo')],
          },
        ],
      }),
    ]);
    expect(match('h', '/old')?.redirect).toEqual({ scheme: 'https', statusCode: 301 });
    const e = match('h', '/x')!;
    expect(e.rewrite).toEqual({ hostname: 'internal', path: { type: 'ReplacePrefixMatch', value: '/v2' } });
    expect(e.requestHeaders).toEqual({ set: [['x-a', '1']], add: [], remove: ['x-b'] });
  });

  it('gives equal content the same hash and a changed catalog a new one', () => {
    const routes = [route('r', { rules: [{ backends: [be('echo')] }] })];
    const h1 = compile({ routes, catalog }).table.hash;
    expect(compile({ routes, catalog: structuredClone(catalog) }).table.hash).toBe(h1);
    const changed = structuredClone(catalog);
    changed.datacenters.dc1!.services.hidden![0]!.health = 'critical'; // not referenced by any route
    expect(compile({ routes, catalog: changed }).table.hash).toBe(h1);
    changed.datacenters.dc1!.services.echo![2]!.health = 'passing';
    expect(compile({ routes, catalog: changed }).table.hash).not.toBe(h1);
  });
});
