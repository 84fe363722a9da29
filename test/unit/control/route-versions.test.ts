// Programmed follows each route's own compiled form: the table is serialized once (the hash over the bytes that
// are sent and saved), each route's digest is taken on the way, and a publish that leaves a route's form alone
// leaves it served while the workers catch up with the others.
import { describe, expect, it } from 'vitest';
import type { CatalogSnapshot } from '../../../src/api/catalog.ts';
import type { RouteSource } from '../../../src/api/route-source.ts';
import { compile } from '../../../src/compile/compile.ts';
import { RouteVersions } from '../../../src/control/route-versions.ts';
import type { TableData } from '../../../src/table/types.ts';
import { decodeTable, encodeTableBody, hashOfJson, tableWire } from '../../../src/table/wire.ts';

const route = (name: string, spec: unknown): RouteSource => ({
  raw: {
    apiVersion: 'edgegate.io/v1alpha1',
    kind: 'GatewayRoute',
    metadata: { name, namespace: 'ns' },
    spec,
  },
  origin: `${name}.yaml:1`,
});
const catalog: CatalogSnapshot = {
  localDatacenter: 'dc1',
  datacenters: {
    dc1: {
      services: {
        echo: [
          { id: 'e1', address: '127.0.0.1', port: 9001, tags: [], meta: {}, health: 'passing', weight: 1 },
        ],
      },
    },
  },
};
const spec = (path: string, hosts: string[] = ['a.example.com']) => ({
  hostnames: hosts,
  rules: [{ matches: [{ path: { value: path } }], backends: [{ consul: { service: 'echo' } }] }],
});

function table(routes: RouteSource[], version: number, cat = catalog): TableData {
  const t = compile({ routes, catalog: cat }).table;
  t.version = version;
  return t;
}

describe('table wire', () => {
  it('is the JSON of the body, hashed over those bytes, and round-trips', () => {
    const t = table([route('a', spec('/a')), route('b', spec('/b'))], 1);
    const wire = tableWire(t);
    expect(wire.json).toBe(JSON.stringify({ entries: t.entries, hosts: t.hosts, clusters: t.clusters }));
    expect(wire.hash).toBe(hashOfJson(wire.json));
    expect(t.hash).toBe(wire.hash);
    expect(tableWire(t)).toBe(wire); // encoded once per table
    expect(decodeTable(wire.json, 1, wire.hash)).toEqual(t);
  });

  it('a route digest changes with its own rules or hostnames, not with other routes or endpoints', () => {
    const base = encodeTableBody(table([route('a', spec('/a')), route('b', spec('/b'))], 1));
    const otherChanged = encodeTableBody(table([route('a', spec('/a')), route('b', spec('/b2'))], 2));
    const hostChanged = encodeTableBody(
      table([route('a', spec('/a', ['z.example.com'])), route('b', spec('/b'))], 3),
    );
    const moreEndpoints = structuredClone(catalog);
    moreEndpoints.datacenters.dc1!.services.echo!.push({
      ...moreEndpoints.datacenters.dc1!.services.echo![0]!,
      id: 'e2',
      port: 9002,
    });
    const endpointsChanged = encodeTableBody(
      table([route('a', spec('/a')), route('b', spec('/b'))], 4, moreEndpoints),
    );
    expect(otherChanged.routes.get('ns/a')).toBe(base.routes.get('ns/a'));
    expect(otherChanged.routes.get('ns/b')).not.toBe(base.routes.get('ns/b'));
    expect(hostChanged.routes.get('ns/a')).not.toBe(base.routes.get('ns/a'));
    expect(endpointsChanged.hash).not.toBe(base.hash);
    expect(endpointsChanged.routes.get('ns/a')).toBe(base.routes.get('ns/a'));
  });
});

describe('RouteVersions', () => {
  it('an unchanged route stays served while a new version waits for the workers; a changed one waits', () => {
    const v = new RouteVersions();
    v.published(table([route('a', spec('/a')), route('b', spec('/b'))], 1));
    expect(v.isServed('ns/a')).toBe(false);
    expect(v.served(1).sort()).toEqual(['ns/a', 'ns/b']);
    expect(v.isServed('ns/a')).toBe(true);

    v.published(table([route('a', spec('/a')), route('b', spec('/b2')), route('c', spec('/c'))], 2));
    expect(v.isServed('ns/a')).toBe(true); // the publish did not touch a
    expect(v.isServed('ns/b')).toBe(false);
    expect(v.isServed('ns/c')).toBe(false);
    expect(v.since('ns/a')).toBe(1);
    expect(v.since('ns/b')).toBe(2);
    expect(v.waiting).toBe(2);
    // A newer version published before 2 was served: b changes again, c does not.
    v.published(table([route('a', spec('/a')), route('b', spec('/b3')), route('c', spec('/c'))], 3));
    expect(v.served(2)).toEqual(['ns/c']);
    expect(v.isServed('ns/b')).toBe(false);
    expect(v.served(3)).toEqual(['ns/b']);
    expect(v.waiting).toBe(0);
    // A route removed from the table is not served (and not waited for).
    v.published(table([route('a', spec('/a'))], 4));
    expect(v.isServed('ns/b')).toBe(false);
    expect(v.since('ns/b')).toBeUndefined();
    expect(v.served(4)).toEqual([]);
  });
});
