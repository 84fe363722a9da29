import { describe, expect, it } from 'vitest';
import { compile } from '../../../../src/compile/compile.ts';
import {
  announcedSha256,
  contentDigestOf,
  parseSignatureHeader,
} from '../../../../src/dataplane/policy/signature.ts';

const route = (policies: unknown, extra: Record<string, unknown> = {}) => ({
  raw: {
    apiVersion: 'edgegate.io/v1alpha1',
    kind: 'GatewayRoute',
    metadata: { name: 'r', namespace: 'ns' },
    spec: { rules: [{ backends: [{ consul: { service: 'api' } }], policies, ...extra }] },
  },
  origin: 'test',
});

function run(policies: unknown, extra?: Record<string, unknown>) {
  return compile({ routes: [route(policies, extra)], catalog: { localDatacenter: 'dc1', datacenters: {} } });
}

describe('compile: policies', () => {
  it('fills defaults and canonicalizes into table data (no key material)', () => {
    const { table, statuses } = run({
      priority: 'High',
      ipAllow: ['10.1.2.3/8', '::ffff:192.0.2.0/120'],
      rateLimit: { requests: 50 },
      signature: { keySet: 'partners' },
      jwt: {
        keySet: 'jwt',
        algorithms: ['ES256', 'ES256'],
        forwardClaims: [{ claim: 'sub', header: 'X-User' }],
      },
    });
    expect(statuses[0]!.accepted).toBe(true);
    expect(table.entries[0]!.policies).toEqual({
      priority: 'High',
      ipAllow: ['10.0.0.0/8', '192.0.2.0/24'],
      rateLimit: { requests: 50, periodMs: 1000, burst: 50, key: 'Route' },
      signature: {
        keySet: 'partners',
        header: 'x-signature',
        dateHeader: 'date',
        nonceHeader: 'x-signature-nonce',
        clockSkewMs: 300_000,
        maxBodyBytes: 1_048_576,
      },
      jwt: {
        jwksCacheMs: 600_000,
        keySet: 'jwt',
        audiences: [],
        algorithms: ['ES256'],
        clockSkewMs: 30_000,
        header: 'authorization',
        forwardClaims: [{ claim: 'sub', header: 'x-user' }],
      },
    });
  });

  it('a rule without policies, or with only the default priority, carries none', () => {
    expect(run(undefined).table.entries[0]!.policies).toBeUndefined();
    expect(run({ priority: 'Normal' }).table.entries[0]!.policies).toBeUndefined();
  });

  it('rejects the route naming the field: bad CIDR, none algorithm, one-of, header rules', () => {
    const problems = (p: unknown) =>
      run(p).statuses[0]!.errors.map((e) => `${e.path.join('.')}: ${e.message}`);
    expect(problems({ ipDeny: ['10.0.0.0/40'] })[0]).toMatch(
      /^spec\.rules\.0\.policies\.ipDeny\.0: invalid prefix/,
    );
    expect(problems({ jwt: { jwksUrl: 'https://x.test/jwks', algorithms: ['none'] } })[0]).toMatch(
      /^spec\.rules\.0\.policies\.jwt\.algorithms\.0: must be one of/,
    );
    expect(problems({ jwt: { algorithms: ['RS256'] } })).toContain(
      'spec.rules.0.policies.jwt: exactly one of jwksUrl or keySet must be set',
    );
    expect(problems({ jwt: { jwksUrl: 'https://x.test/jwks', algorithms: ['HS256'] } })[0]).toMatch(
      /shared secret/,
    );
    expect(problems({ rateLimit: { requests: 1, key: 'Header' } })).toContain(
      'spec.rules.0.policies.rateLimit.header: required with key Header',
    );
    expect(problems({ externalAuth: { url: 'http://auth.test', responseHeaders: ['Host'] } })[0]).toMatch(
      /responseHeaders\.0: Host is set by the gateway/,
    );
  });

  it('externalAuth.requestHeaders cannot pass a client copy of what the gateway tells the auth service', () => {
    const problems = (p: unknown) =>
      run(p).statuses[0]!.errors.map((e) => `${e.path.join('.')}: ${e.message}`);
    const names = [
      'X-Forwarded-Uri',
      'x-original-uri',
      'X-Original-URL',
      'x-forwarded-for',
      'x-request-id',
      'host',
    ];
    expect(
      problems({ externalAuth: { url: 'http://auth.test', requestHeaders: ['authorization', ...names] } }),
    ).toEqual(
      names.map((n, i) =>
        expect.stringMatching(
          new RegExp(
            `^spec\\.rules\\.0\\.policies\\.externalAuth\\.requestHeaders\\.${i + 1}: ${n} is set by the gateway`,
          ),
        ),
      ),
    );
  });

  it('cookie matches compile and rank like header matches', () => {
    const { table } = run(undefined, { matches: [{ cookies: [{ name: 'canary', value: 'yes' }] }] });
    expect(table.entries[0]!.matchData.cookies).toEqual([{ type: 'Exact', name: 'canary', value: 'yes' }]);
  });
});

describe('signature helpers', () => {
  it('parses the signature header with or without quotes', () => {
    expect(parseSignatureHeader('keyId="k1", signature="abc="')).toEqual({ keyId: 'k1', signature: 'abc=' });
    expect(parseSignatureHeader('keyid=k1,signature=abc')).toEqual({ keyId: 'k1', signature: 'abc' });
    expect(parseSignatureHeader('keyId=k1')).toBeUndefined();
    expect(parseSignatureHeader('garbage')).toBeUndefined();
  });

  it('reads sha-256 from Content-Digest (RFC 9530) and Digest (RFC 3230)', () => {
    const cd = contentDigestOf('hello');
    const raw = announcedSha256(cd, undefined)!;
    expect(raw).toHaveLength(32);
    expect(announcedSha256(`sha-512=:AAAA:, ${cd}`, undefined)).toEqual(raw);
    expect(announcedSha256(undefined, `SHA-256=${raw.toString('base64')}`)).toEqual(raw);
    expect(announcedSha256('md5=:AAAA:', `SHA-256=${raw.toString('base64')}`)).toBeUndefined();
  });
});
