/** The request path refactor keeps catalog routes, redirects and rewrites working (and their traffic settings). */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compile } from '../../src/compile/compile.ts';
import {
  type Gateway,
  get,
  instance,
  startEcho,
  startGateway,
  type Upstream,
} from '../support/inproc-gateway.ts';

let a: Upstream;
let b: Upstream;
let gw: Gateway;

const meta = (name: string) => ({
  apiVersion: 'edgegate.io/v1alpha1',
  kind: 'GatewayRoute',
  metadata: { name, namespace: 'edge' },
});

beforeAll(async () => {
  a = await startEcho('a');
  b = await startEcho('b');
  const { table, statuses } = compile({
    routes: [
      {
        raw: {
          ...meta('catalog'),
          spec: {
            hostnames: ['catalog.local'],
            catalog: {
              pathPrefix: '/',
              requiredTags: [],
              datacenters: [],
              loadBalancer: { type: 'ConsistentHash', consistentHash: { header: 'x-user' } },
            },
          },
        },
        origin: 'test',
      },
      {
        raw: {
          ...meta('rules'),
          spec: {
            hostnames: ['rules.local'],
            rules: [
              {
                matches: [{ path: { type: 'PathPrefix', value: '/old' } }],
                filters: [
                  {
                    type: 'RequestRedirect',
                    requestRedirect: {
                      path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/new' },
                      statusCode: 301,
                    },
                  },
                ],
              },
              {
                matches: [{ path: { type: 'PathPrefix', value: '/api' } }],
                filters: [
                  {
                    type: 'URLRewrite',
                    urlRewrite: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/v2' } },
                  },
                ],
                backends: [{ consul: { service: 'echo' } }],
              },
            ],
          },
        },
        origin: 'test',
      },
    ],
    catalog: {
      localDatacenter: 'dc1',
      datacenters: { dc1: { services: { echo: [instance(a.port, 'a'), instance(b.port, 'b')] } } },
    },
  });
  expect(statuses.every((s) => s.accepted)).toBe(true);
  gw = await startGateway({ ...table, version: 1 });
});

afterAll(async () => {
  await gw.close();
  await a.close();
  await b.close();
});

describe('routing through the new request path', () => {
  it('catalog route: /{dc}/{service}/{rest} with its consistent-hash balancer', async () => {
    const names = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const r = await get(gw.port, '/dc1/echo/x/y?q=1', { host: 'catalog.local', 'x-user': 'alice' });
      expect(r.status).toBe(200);
      const body = JSON.parse(r.body);
      expect(body.url).toBe('/x/y?q=1');
      names.add(body.name);
    }
    expect(names.size).toBe(1);
    const unknown = await get(gw.port, '/dc9/echo/x', { host: 'catalog.local' });
    expect(JSON.parse(unknown.body).error).toBe('EDGEGATE_CATALOG_UNKNOWN_DATACENTER');
  });

  it('redirects and rewrites', async () => {
    const r = await get(gw.port, '/old/page?x=1', { host: 'rules.local:8080' });
    expect(r.status).toBe(301);
    expect(r.headers.location).toBe('http://rules.local:8080/new/page?x=1');
    const w = await get(gw.port, '/api/items', { host: 'rules.local' });
    expect(w.status).toBe(200);
    expect(JSON.parse(w.body).path).toBe('/v2/items');
  });
});
