/** Pure parts of the Consul source: health aggregation, the watch set, settings from the environment. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { GatewayRoute } from '../../../../../src/api/gateway-route.ts';
import { validateRoute } from '../../../../../src/api/validate.ts';
import { consulOption } from '../../../../../src/control/sources/consul/cli.ts';
import { aggregateHealth, instancesFromHealth } from '../../../../../src/control/sources/consul/health.ts';
import { consulSettingsFromEnv } from '../../../../../src/control/sources/consul/settings.ts';
import { deriveWatchSet } from '../../../../../src/control/sources/consul/watch-set.ts';

describe('health', () => {
  it('is the worst of node and service checks; maintenance is critical; no checks is passing', () => {
    expect(aggregateHealth([])).toBe('passing');
    expect(aggregateHealth([{ Status: 'passing' }, { Status: 'warning' }])).toBe('warning');
    expect(aggregateHealth([{ CheckID: 'serfHealth', Status: 'critical' }, { Status: 'passing' }])).toBe(
      'critical',
    );
    expect(aggregateHealth([{ CheckID: '_node_maintenance', Status: 'passing' }])).toBe('critical');
    expect(aggregateHealth([{ CheckID: '_service_maintenance:web-1', Status: 'warning' }])).toBe('critical');
    expect(aggregateHealth([{ Status: 'maintenance' }])).toBe('critical');
  });

  it('maps entries: service address over node address, weights by health, unroutable entries skipped', () => {
    const out = instancesFromHealth([
      {
        Node: { Node: 'n1', Address: '10.0.0.1' },
        Service: { ID: 'b', Port: 80, Address: '', Tags: null, Weights: { Passing: 3, Warning: 1 } },
        Checks: [{ Status: 'passing' }],
      },
      {
        Node: { Node: 'n2', Address: '10.0.0.2' },
        Service: {
          ID: 'a',
          Port: 81,
          Address: '10.9.9.9',
          Tags: ['v2'],
          Meta: { zone: 'z' },
          Weights: { Passing: 3, Warning: 2 },
        },
        Checks: [{ Status: 'warning' }],
      },
      { Node: { Node: 'n3', Address: '10.0.0.3' }, Service: { ID: 'noport', Port: 0 }, Checks: [] },
    ]);
    expect(out).toEqual([
      {
        id: 'a',
        address: '10.9.9.9',
        port: 81,
        tags: ['v2'],
        meta: { zone: 'z' },
        health: 'warning',
        weight: 2,
      },
      { id: 'b', address: '10.0.0.1', port: 80, tags: [], meta: {}, health: 'passing', weight: 3 },
    ]);
    expect(() => instancesFromHealth({})).toThrow(/array/);
  });
});

const parse = (spec: unknown): GatewayRoute => {
  const v = validateRoute({
    apiVersion: 'edgegate.io/v1alpha1',
    kind: 'GatewayRoute',
    metadata: { name: 'r' },
    spec,
  });
  if (!v.ok) throw new Error(JSON.stringify(v.errors));
  return v.route;
};

describe('deriveWatchSet', () => {
  const view = {
    localDatacenter: 'dc1',
    datacenters: ['dc1', 'dc2'],
    services: { dc1: { web: ['edge', 'v1'], db: [] }, dc2: { web: ['v1'], api: ['edge'] } },
  };

  it('takes backend services (local datacenter by default) and catalog services with every required tag', () => {
    const ws = deriveWatchSet(
      [
        parse({
          rules: [
            { backends: [{ consul: { service: 'db' } }, { consul: { service: 'x', datacenter: 'dc9' } }] },
          ],
        }),
        parse({ catalog: { requiredTags: ['edge'] } }),
      ],
      view,
    );
    expect(ws.datacenters).toEqual(['dc1', 'dc2']);
    expect(ws.services).toEqual([
      { datacenter: 'dc1', service: 'db' },
      { datacenter: 'dc1', service: 'web' },
      { datacenter: 'dc2', service: 'api' },
    ]);
  });

  it('limits a catalog route to its allowed datacenters; a service in both lists is watched once', () => {
    const ws = deriveWatchSet(
      [
        parse({ catalog: { requiredTags: ['v1'], datacenters: ['dc2', 'dc7'] } }),
        parse({ rules: [{ backends: [{ consul: { service: 'web', datacenter: 'dc2', tags: ['v1'] } }] }] }),
      ],
      view,
    );
    expect(ws).toEqual({ datacenters: ['dc2'], services: [{ datacenter: 'dc2', service: 'web' }] });
  });
});

describe('settings', () => {
  it('follows Consul conventions for the address, TLS and token', () => {
    expect(consulSettingsFromEnv({}).address).toBe('http://127.0.0.1:8500');
    expect(consulSettingsFromEnv({ CONSUL_HTTP_ADDR: 'consul.local:8500' }).address).toBe(
      'http://consul.local:8500',
    );
    expect(consulSettingsFromEnv({ CONSUL_HTTP_ADDR: 'consul.local', CONSUL_HTTP_SSL: 'true' }).address).toBe(
      'https://consul.local:8501',
    );
    expect(consulSettingsFromEnv({ CONSUL_ADDR: 'https://10.0.0.1:8501' }).address).toBe(
      'https://10.0.0.1:8501',
    );
    const dir = mkdtempSync(join(tmpdir(), 'consul-token-'));
    writeFileSync(join(dir, 'token'), '  s3cr3t\n');
    const s = consulSettingsFromEnv({
      CONSUL_HTTP_TOKEN_FILE: join(dir, 'token'),
      CONSUL_NAMESPACE: 'team',
      CONSUL_PARTITION: 'p1',
    });
    expect(s).toMatchObject({
      token: 's3cr3t',
      namespace: 'team',
      partition: 'p1',
      consistency: 'stale',
      maxStalenessMs: 0,
    });
    expect(
      consulSettingsFromEnv({ CONSUL_HTTP_TOKEN: 'direct', CONSUL_HTTP_TOKEN_FILE: join(dir, 'token') })
        .token,
    ).toBe('direct');
  });

  it('refuses bad values naming the variable', () => {
    expect(() => consulSettingsFromEnv({ CONSUL_HTTP_ADDR: 'unix:///tmp/consul.sock' })).toThrow(
      /CONSUL_HTTP_ADDR: unix/,
    );
    expect(() => consulSettingsFromEnv({ CONSUL_HTTP_ADDR: 'ftp://x:1' })).toThrow(
      /CONSUL_HTTP_ADDR: scheme/,
    );
    expect(() => consulSettingsFromEnv({ CONSUL_HTTP_SSL: 'maybe' })).toThrow(
      /CONSUL_HTTP_SSL: expected true or false/,
    );
    expect(() => consulSettingsFromEnv({ CONSUL_CACERT: '/nonexistent/ca.pem' })).toThrow(
      /CONSUL_CACERT: cannot read/,
    );
    expect(() => consulSettingsFromEnv({ EDGEGATE_CONSUL_WAIT: '20m' })).toThrow(
      /EDGEGATE_CONSUL_WAIT: 20m is out of range/,
    );
    expect(() => consulSettingsFromEnv({ EDGEGATE_CONSUL_CONSISTENCY: 'fast' })).toThrow(
      /EDGEGATE_CONSUL_CONSISTENCY/,
    );
    expect(() => consulSettingsFromEnv({ CONSUL_CLIENT_CERT: '/x' })).toThrow(
      /CONSUL_CLIENT_KEY must be given together/,
    );
  });

  it('--consul is on when CONSUL_HTTP_ADDR is set, and cannot be combined with --catalog', () => {
    expect(consulOption({}, {})).toBeUndefined();
    expect(consulOption({}, { CONSUL_HTTP_ADDR: '127.0.0.1:8500' })?.address).toBe('http://127.0.0.1:8500');
    expect(consulOption({ catalog: 'c.yaml' }, { CONSUL_HTTP_ADDR: '127.0.0.1:8500' })).toBeUndefined();
    expect(consulOption({ consul: true, datacenter: 'dc3' }, {})?.datacenter).toBe('dc3');
    expect(() => consulOption({ consul: true, catalog: 'c.yaml' }, {})).toThrow(/--consul and --catalog/);
  });
});
