/**
 * JWT through `edgegate run --workers 2`, with keys from a JWKS endpoint on loopback (cached, refreshed on
 * rotation) and from a static key set. One test per bypass attempt: alg none, an algorithm outside the allow-list
 * (HS256 keyed with the public key), expired, not yet valid, wrong issuer, wrong audience, wrong key.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, exportSPKI, generateKeyPair, type JWK, type JWTPayload, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../support/wait.ts';
import {
  call,
  type PolicyGateway,
  type RecordingUpstream,
  startPolicyGateway,
  startRecordingUpstream,
} from './helpers.ts';

type Pair = Awaited<ReturnType<typeof generateKeyPair>>;
let up: RecordingUpstream;
let pg: PolicyGateway;
let jwks: Server;
let jwksKeys: JWK[] = [];
let jwksFetches = 0;
let rsa: Pair;
let rsaOther: Pair;
let rsaRotated: Pair;
let ec: Pair;

const ISS = 'https://issuer.test';
const AUD = 'edge-api';

beforeAll(async () => {
  rsa = await generateKeyPair('RS256', { extractable: true });
  rsaOther = await generateKeyPair('RS256', { extractable: true });
  rsaRotated = await generateKeyPair('RS256', { extractable: true });
  ec = await generateKeyPair('ES256', { extractable: true });
  jwksKeys = [{ ...(await exportJWK(rsa.publicKey)), kid: 'rsa-1', alg: 'RS256', use: 'sig' }];
  jwks = createServer((_req, res) => {
    jwksFetches++;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys: jwksKeys }));
  });
  jwks.listen({ host: '127.0.0.1', port: 0 });
  await once(jwks, 'listening');
  const jwksUrl = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/.well-known/jwks.json`;
  up = await startRecordingUpstream('jwt-upstream');
  const forwardClaims = [
    { claim: 'sub', header: 'x-user-id' },
    { claim: 'scope', header: 'x-scope' },
  ];
  pg = await startPolicyGateway({
    services: { api: [{ port: up.port }] },
    routes: {
      jwt: {
        rules: [
          {
            name: 'remote',
            matches: [{ path: { type: 'PathPrefix', value: '/remote' } }],
            backends: [{ consul: { service: 'api' } }],
            policies: {
              jwt: {
                jwksUrl,
                jwksCacheDuration: '1s',
                issuer: ISS,
                audiences: [AUD],
                algorithms: ['RS256'],
                clockSkew: '5s',
                forwardClaims,
              },
            },
          },
          {
            name: 'static',
            matches: [{ path: { type: 'PathPrefix', value: '/static' } }],
            backends: [{ consul: { service: 'api' } }],
            policies: { jwt: { keySet: 'jwt-keys', algorithms: ['ES256'], forwardClaims } },
          },
        ],
      },
    },
    secrets: { 'jwt-keys': { 'ec-1': await exportSPKI(ec.publicKey) } },
  });
});

afterAll(async () => {
  await pg?.stop();
  await up?.close();
  jwks?.closeAllConnections();
  jwks?.close();
});

async function token(
  opts: {
    key?: Pair;
    alg?: string;
    kid?: string;
    claims?: JWTPayload;
    exp?: number | string;
    nbf?: number;
  } = {},
): Promise<string> {
  const j = new SignJWT({ sub: 'alice', scope: 'orders:read', ...opts.claims })
    .setProtectedHeader({ alg: opts.alg ?? 'RS256', kid: opts.kid ?? 'rsa-1' })
    .setIssuer(ISS)
    .setAudience(AUD)
    .setIssuedAt()
    .setExpirationTime(opts.exp ?? '5m');
  if (opts.nbf !== undefined) j.setNotBefore(opts.nbf);
  return j.sign((opts.key ?? rsa).privateKey);
}

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

async function expectRefused(path: string, bearer: string | undefined, reason: string) {
  const before = up.seen.length;
  const a = await call(
    pg.gw.port,
    path,
    bearer === undefined ? {} : { headers: { authorization: `Bearer ${bearer}` } },
  );
  expect(a.status).toBe(401);
  expect(a.json<{ error: string; reason: string }>()).toMatchObject({
    error: 'EDGEGATE_JWT_INVALID',
    reason,
  });
  expect(a.headers['www-authenticate']).toContain('Bearer');
  expect(up.seen.length).toBe(before);
}

describe('JWT', () => {
  it('a valid token passes; selected claims are forwarded and client copies of those headers removed', async () => {
    const a = await call(pg.gw.port, '/remote/orders', {
      headers: { authorization: `Bearer ${await token()}`, 'x-user-id': 'admin', 'X-Scope': 'everything' },
    });
    expect(a.status).toBe(200);
    const seen = up.seen.at(-1)!;
    expect(seen.headers['x-user-id']).toBe('alice');
    expect(seen.headers['x-scope']).toBe('orders:read');
  });

  it('a claim the token lacks leaves no header at all (the spoofed one is still removed)', async () => {
    const t = await token({ claims: { scope: undefined } });
    const a = await call(pg.gw.port, '/remote/x', {
      headers: { authorization: `Bearer ${t}`, 'x-scope': 'admin' },
    });
    expect(a.status).toBe(200);
    expect(up.seen.at(-1)!.headers['x-scope']).toBeUndefined();
  });

  it('refuses a missing or malformed Authorization header', async () => {
    await expectRefused('/remote/x', undefined, 'missing');
    await expectRefused('/remote/x', 'not a token', 'malformed');
  });

  it('refuses alg: none', async () => {
    const unsigned = `${b64({ alg: 'none', typ: 'JWT', kid: 'rsa-1' })}.${b64({ sub: 'admin', iss: ISS, aud: AUD, exp: Math.floor(Date.now() / 1000) + 300 })}.`;
    const a = await call(pg.gw.port, '/remote/x', { headers: { authorization: `Bearer ${unsigned}` } });
    expect(a.status).toBe(401);
    expect(a.json<{ error: string }>().error).toBe('EDGEGATE_JWT_INVALID');
    // also with a bogus signature part
    const a2 = await call(pg.gw.port, '/remote/x', { headers: { authorization: `Bearer ${unsigned}AAAA` } });
    expect(a2.status).toBe(401);
  });

  it('refuses an algorithm outside the allow-list (HS256 keyed with the RSA public key: algorithm confusion)', async () => {
    const publicPem = await exportSPKI(rsa.publicKey);
    const forged = await new SignJWT({ sub: 'admin' })
      .setProtectedHeader({ alg: 'HS256', kid: 'rsa-1' })
      .setIssuer(ISS)
      .setAudience(AUD)
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode(publicPem));
    await expectRefused('/remote/x', forged, 'algorithm');
  });

  it('refuses an expired token (beyond the clock skew)', async () => {
    await expectRefused('/remote/x', await token({ exp: Math.floor(Date.now() / 1000) - 60 }), 'expired');
  });

  it('refuses a token that is not valid yet', async () => {
    await expectRefused(
      '/remote/x',
      await token({ nbf: Math.floor(Date.now() / 1000) + 120 }),
      'not-yet-valid',
    );
  });

  it('refuses the wrong audience and the wrong issuer', async () => {
    const wrongAud = await new SignJWT({ sub: 'alice' })
      .setProtectedHeader({ alg: 'RS256', kid: 'rsa-1' })
      .setIssuer(ISS)
      .setAudience('another-api')
      .setExpirationTime('5m')
      .sign(rsa.privateKey);
    await expectRefused('/remote/x', wrongAud, 'audience');
    const wrongIss = await new SignJWT({ sub: 'alice' })
      .setProtectedHeader({ alg: 'RS256', kid: 'rsa-1' })
      .setIssuer('https://evil.test')
      .setAudience(AUD)
      .setExpirationTime('5m')
      .sign(rsa.privateKey);
    await expectRefused('/remote/x', wrongIss, 'issuer');
  });

  it('refuses a token signed with the wrong key (same kid) and one with an unknown kid', async () => {
    await expectRefused('/remote/x', await token({ key: rsaOther }), 'bad-signature');
    await expectRefused('/remote/x', await token({ key: rsaOther, kid: 'who' }), 'unknown-key');
  });

  it('caches the JWKS, and picks up a rotated key after the cache duration', async () => {
    const before = jwksFetches;
    for (let i = 0; i < 10; i++)
      expect(
        (await call(pg.gw.port, '/remote/x', { headers: { authorization: `Bearer ${await token()}` } }))
          .status,
      ).toBe(200);
    const fetchesFor10 = jwksFetches - before;
    jwksKeys = [
      ...jwksKeys,
      { ...(await exportJWK(rsaRotated.publicKey)), kid: 'rsa-2', alg: 'RS256', use: 'sig' },
    ];
    const rotated = await token({ key: rsaRotated, kid: 'rsa-2' });
    await waitFor(
      async () =>
        (await call(pg.gw.port, '/remote/x', { headers: { authorization: `Bearer ${rotated}` } })).status ===
        200,
      { timeoutMs: 15_000, intervalMs: 250, message: 'rotated key accepted' },
    );
    console.log(`JWKS fetches for 10 requests over 2 workers: ${fetchesFor10}; total so far ${jwksFetches}`);
    expect(fetchesFor10).toBeLessThanOrEqual(4);
  });

  it('verifies with a static key set (PEM public key by kid)', async () => {
    const t = await token({ key: ec, alg: 'ES256', kid: 'ec-1' });
    const a = await call(pg.gw.port, '/static/x', { headers: { authorization: `Bearer ${t}` } });
    expect(a.status).toBe(200);
    expect(up.seen.at(-1)!.headers['x-user-id']).toBe('alice');
    // an RS256 token is outside that rule's allow-list
    await expectRefused('/static/x', await token(), 'algorithm');
  });
});
