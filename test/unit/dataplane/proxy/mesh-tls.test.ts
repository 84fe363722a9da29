import type { PeerCertificate } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { parsePeerPath } from '../../../../src/dataplane/proxy/catalog-peer-path.ts';
import { meshServerName, spiffeIdOf, uriSans } from '../../../../src/dataplane/proxy/mesh-tls.ts';

const m = { service: 'web', namespace: 'default', datacenter: 'dc1' };

describe('mesh identity', () => {
  it('builds the SPIFFE ID and the SNI Consul proxies use', () => {
    expect(spiffeIdOf('11-22.consul', m)).toBe('spiffe://11-22.consul/ns/default/dc/dc1/svc/web');
    expect(meshServerName('11-22.consul', m)).toBe('web.default.dc1.internal.11-22.consul');
  });

  it('reads every URI SAN (quoted ones too) and nothing else', () => {
    const cert = (san: string | undefined) => ({ subjectaltname: san }) as PeerCertificate;
    expect(uriSans(cert('DNS:web.example, URI:spiffe://td/ns/default/dc/dc1/svc/web'))).toEqual([
      'spiffe://td/ns/default/dc/dc1/svc/web',
    ]);
    expect(uriSans(cert('URI:"spiffe://td/a, b", URI:spiffe://td/c'))).toEqual([
      'spiffe://td/a, b',
      'spiffe://td/c',
    ]);
    expect(uriSans(cert('DNS:spiffe://td/ns/default/dc/dc1/svc/web'))).toEqual([]);
    // A value smuggling a second entry stays one value (Node quotes it).
    expect(uriSans(cert('URI:"x, URI:spiffe://td/evil"'))).toEqual(['x, URI:spiffe://td/evil']);
    expect(uriSans(cert(undefined))).toEqual([]);
  });
});

describe('parsePeerPath', () => {
  it('splits /peer/{peer}/{service}/{rest}', () => {
    const at = (p: string) => parsePeerPath(p, p.indexOf('/', 1));
    expect(at('/peer/west/billing/v1/x')).toEqual({ peer: 'west', service: 'billing', path: '/v1/x' });
    expect(at('/peer/west/billing')).toEqual({ peer: 'west', service: 'billing', path: '/' });
    expect(at('/peer/west/billing/')).toEqual({ peer: 'west', service: 'billing', path: '/' });
    expect(at('/peer/west')).toBeUndefined();
    expect(at('/peer/west/')).toBeUndefined();
    expect(at('/peer')).toBeUndefined();
  });
});
