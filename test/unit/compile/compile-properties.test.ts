/**
 * Properties of compile + the table index, checked with fast-check:
 * - the same routes (and catalog) in any order give the same table, byte for byte;
 * - for generated routes and requests, the entry the index picks is the one a slow, obviously-correct reference
 *   matcher picks: filter every (route, rule, match) that matches, sort by the full HTTPRoute precedence key,
 *   take the first.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { CatalogSnapshot } from '../../../src/api/catalog.ts';
import type { GatewayRoute } from '../../../src/api/gateway-route.ts';
import type { RouteSource } from '../../../src/api/route-source.ts';
import { compile } from '../../../src/compile/compile.ts';
import { RoutingTable } from '../../../src/table/index.ts';

const HOSTNAMES = ['a.example.com', '*.example.com', 'b.a.example.com', '*.a.example.com'];
const PREFIXES = ['/', '/a', '/a/b', '/a/b/c', '/b', '/ab'];
const REGEXES = ['/a.*', '/[ab]/.*', '.*', '/a/b', '/a/b/.*', '/a/[bc]+', '/ab?/.*', '/b/x|/a/b', '/a/(b|c)'];
const HEADERS = [
  { name: 'x-a', value: '1' },
  { name: 'x-b', value: '2' },
  { name: 'x-a', value: '2' },
];
const TIMES = ['2024-01-01T00:00:00Z', '2025-01-01T00:00:00Z'];

const matchArb = fc.record(
  {
    path: fc.oneof(
      fc.record({ type: fc.constant('Exact'), value: fc.constantFrom(...PREFIXES) }),
      fc.record({ type: fc.constant('PathPrefix'), value: fc.constantFrom(...PREFIXES) }),
      fc.record({ type: fc.constant('RegularExpression'), value: fc.constantFrom(...REGEXES) }),
    ),
    headers: fc.subarray(HEADERS, { maxLength: 2 }),
    queryParams: fc.subarray([{ name: 'q', value: '1' }], { maxLength: 1 }),
    method: fc.constantFrom('GET', 'POST'),
  },
  { requiredKeys: ['path'] },
);

const routeArb = fc.record(
  {
    hostnames: fc.subarray(HOSTNAMES, { maxLength: 2 }),
    rules: fc.array(fc.record({ matches: fc.array(matchArb, { minLength: 1, maxLength: 3 }) }), {
      minLength: 1,
      maxLength: 3,
    }),
    created: fc.option(fc.constantFrom(...TIMES), { nil: undefined }),
    namespace: fc.constantFrom('ns1', 'ns2'),
  },
  { requiredKeys: ['hostnames', 'rules', 'namespace'] },
);

const routesArb = fc.array(routeArb, { minLength: 1, maxLength: 6 }).map((list) =>
  list.map(
    (r, i): RouteSource => ({
      raw: {
        apiVersion: 'edgegate.io/v1alpha1',
        kind: 'GatewayRoute',
        metadata: {
          name: `r${i}`,
          namespace: r.namespace,
          ...(r.created ? { creationTimestamp: r.created } : {}),
        },
        spec: {
          ...(r.hostnames.length ? { hostnames: r.hostnames } : {}),
          rules: r.rules.map((rule) => ({ ...rule, backends: [{ consul: { service: 'echo' } }] })),
        },
      },
      origin: `r${i}.yaml:1`,
    }),
  ),
);

const requestArb = fc.record({
  host: fc.constantFrom(
    'a.example.com',
    'b.a.example.com',
    'c.b.a.example.com',
    'c.example.com',
    'example.com',
    'other',
  ),
  path: fc.constantFrom('/', '/a', '/a/', '/a/b', '/a/b/c', '/a/b/c/d', '/ab', '/b/x', '/a/bc', '/b'),
  headers: fc.subarray(HEADERS, { maxLength: 2 }),
  method: fc.constantFrom('GET', 'POST', 'PUT'),
  query: fc.constantFrom('', 'q=1', 'q=2', 'x=1&q=1'),
});

const catalog: CatalogSnapshot = {
  localDatacenter: 'dc1',
  datacenters: {
    dc1: {
      services: {
        echo: [1, 2, 3].map((p) => ({
          id: `e${p}`,
          address: '127.0.0.1',
          port: p,
          tags: [],
          meta: {},
          health: 'passing' as const,
          weight: 1,
        })),
      },
    },
  },
};

function shuffle<T>(list: T[], seed: number): T[] {
  const out = [...list];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

type Req = {
  host: string;
  path: string;
  headers: { name: string; value: string }[];
  method: string;
  query: string;
};

/** The reference: every candidate, sorted by the full precedence key. Deliberately simple. */
function referenceMatch(routes: RouteSource[], req: Req): string | undefined {
  type Cand = { key: (number | string)[]; id: string };
  const cands: Cand[] = [];
  const headerValue = (name: string) => {
    const values = req.headers.filter((h) => h.name === name).map((h) => h.value);
    return values.length ? values.join(', ') : undefined;
  };
  const queryValue = (name: string) => {
    for (const part of req.query.split('&')) {
      const [k, v] = part.split('=');
      if (k === name) return v ?? '';
    }
    return undefined;
  };
  for (const src of routes) {
    const raw = src.raw as GatewayRoute;
    const hostnames: string[] = raw.spec.hostnames ?? [];
    let hostRank: number[] | undefined;
    if (hostnames.length === 0) hostRank = [2, 0];
    for (const h of hostnames) {
      let rank: number[] | undefined;
      if (h === req.host) rank = [0, 0];
      else if (h.startsWith('*.') && req.host.endsWith(h.slice(1))) rank = [1, -h.length];
      if (
        rank &&
        (!hostRank || rank[0]! < hostRank[0]! || (rank[0] === hostRank[0] && rank[1]! < hostRank[1]!))
      )
        hostRank = rank;
    }
    if (!hostRank) continue;
    const created = raw.metadata.creationTimestamp
      ? Date.parse(raw.metadata.creationTimestamp)
      : Number.MAX_SAFE_INTEGER;
    const routeKey = `${raw.metadata.namespace}/${raw.metadata.name}`;
    raw.spec.rules!.forEach((rule, ri) => {
      rule.matches!.forEach((m, mi) => {
        const { type, value } = m.path!;
        let pathOk: boolean;
        if (type === 'Exact') pathOk = req.path === value;
        else if (type === 'PathPrefix') {
          pathOk = value === '/' || req.path === value || req.path.startsWith(`${value}/`);
        } else pathOk = new RegExp(`^(?:${value})$`).test(req.path);
        if (!pathOk) return;
        if (m.method && m.method !== req.method) return;
        for (const h of m.headers ?? []) if (headerValue(h.name) !== h.value) return;
        for (const q of m.queryParams ?? []) if (queryValue(q.name) !== q.value) return;
        const typeRank = { Exact: 0, PathPrefix: 1, RegularExpression: 2 }[type as 'Exact'];
        cands.push({
          key: [
            ...hostRank!,
            typeRank,
            type === 'RegularExpression' ? 0 : -value.length,
            m.method ? 0 : 1,
            -(m.headers ?? []).length,
            -(m.queryParams ?? []).length,
            created,
            routeKey,
            ri,
            mi,
          ],
          id: `${routeKey}#${ri}/${mi}`,
        });
      });
    });
  }
  cands.sort((a, b) => {
    for (let i = 0; i < a.key.length; i++) {
      const x = a.key[i]!;
      const y = b.key[i]!;
      if (x !== y) return x < y ? -1 : 1;
    }
    return 0;
  });
  return cands[0]?.id;
}

describe('compile properties', () => {
  it('gives the same table for the same routes and catalog in any order', () => {
    fc.assert(
      fc.property(routesArb, fc.integer({ min: 1, max: 1_000_000 }), (routes, seed) => {
        const a = compile({ routes, catalog });
        const shuffledCatalog = structuredClone(catalog);
        shuffledCatalog.datacenters.dc1!.services.echo = shuffle(
          shuffledCatalog.datacenters.dc1!.services.echo!,
          seed,
        );
        const b = compile({ routes: shuffle(routes, seed), catalog: shuffledCatalog });
        expect(JSON.stringify(b.table)).toBe(JSON.stringify(a.table));
        expect(b.statuses).toEqual(a.statuses);
      }),
      { numRuns: 300 },
    );
  });

  it('matches the rule HTTPRoute precedence picks (reference matcher)', () => {
    fc.assert(
      fc.property(routesArb, fc.array(requestArb, { minLength: 1, maxLength: 20 }), (routes, requests) => {
        const { table } = compile({ routes, catalog });
        const rt = new RoutingTable(table);
        for (const req of requests) {
          const got = rt.match({
            host: req.host,
            path: req.path,
            method: req.method,
            rawQuery: req.query,
            header: (name) => {
              const values = req.headers.filter((h) => h.name === name).map((h) => h.value);
              return values.length ? values.join(', ') : undefined;
            },
          });
          const gotId = got ? `${got.data.route}#${got.data.rule}/${got.data.match}` : undefined;
          expect(gotId, JSON.stringify(req)).toBe(referenceMatch(routes, req));
        }
      }),
      { numRuns: 500 },
    );
  });
});
