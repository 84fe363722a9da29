/**
 * One named test per attack on the request policies and matching (issues 14 and 23), each through a real gateway
 * (`edgegate run` with one worker, `--trusted-hops 1`, loopback upstreams, auth and JWKS servers). Where the gateway
 * must refuse, the test also proves the upstream received nothing.
 */
import { execFileSync } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { contentDigestOf, signRequest } from '../../src/dataplane/policy/signature.ts';
import {
  CLI,
  type GatewayProcess,
  routeYaml,
  startGateway,
  writeLoopbackCatalog,
} from '../support/gateway.ts';
import { freePort } from '../support/ports.ts';
import { runCommand } from '../support/proc.ts';
import { scrapeMetrics, sumOf } from '../support/prom-text.ts';
import { makeTempDir, removeDir } from '../support/tmp.ts';
import { waitFor } from '../support/wait.ts';
import {
  type Answer,
  call,
  type PolicyGateway,
  prefixRule,
  type RecordingUpstream,
  startPolicyGateway,
  startRecordingUpstream,
} from './policy/helpers.ts';

const HMAC_KEY = 'k1-secret-0123456789';
const HS_SECRET = 'hs-secret-0123456789abcdef';

let up: RecordingUpstream;
const hashUps: RecordingUpstream[] = [];
let auth: Server;
const authSaw: { uri: string; original: string; url: string }[] = [];
let jwksDown: Server;
let jwksDownHits = 0;
let jwksHuge: Server;
let jwksHugeBytes = 0;
let pg: PolicyGateway;
let dir: string;
let certPem: string;
let certKey: KeyObject;
const pkcs1Pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
const derPair = generateKeyPairSync('rsa', { modulusLength: 2048 });
const rulePub = generateKeyPairSync('rsa', { modulusLength: 2048 });
let files: Record<string, Buffer>;

async function listen(server: Server): Promise<number> {
  server.listen({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

beforeAll(async () => {
  dir = makeTempDir('policy-regressions');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      join(dir, 'cert.key'),
      '-out',
      join(dir, 'cert.pem'),
      '-days',
      '1',
      '-subj',
      '/CN=jwt-signer',
    ],
    { stdio: 'pipe' },
  );
  certPem = readFileSync(join(dir, 'cert.pem'), 'utf8');
  certKey = createPrivateKey(readFileSync(join(dir, 'cert.key')));
  files = {
    cert: Buffer.from(certPem),
    pkcs1: Buffer.from(String(pkcs1Pair.publicKey.export({ type: 'pkcs1', format: 'pem' }))),
    der: derPair.publicKey.export({ type: 'spki', format: 'der' }),
    hs: Buffer.from(HS_SECRET),
    mixed: Buffer.from(`${certPem}\n${HS_SECRET}\n`),
  };

  up = await startRecordingUpstream('api');
  for (let i = 0; i < 4; i++) hashUps.push(await startRecordingUpstream(`hash-${i}`));
  auth = createServer((req, res) => {
    const uri = String(req.headers['x-forwarded-uri']);
    authSaw.push({
      uri,
      original: String(req.headers['x-original-uri']),
      url: String(req.headers['x-original-url']),
    });
    res.writeHead(uri.startsWith('/ext/admin') ? 403 : 200, { 'content-type': 'text/plain' }).end('auth');
  });
  const authPort = await listen(auth);
  jwksDown = createServer((_req, res) => {
    jwksDownHits++;
    res.writeHead(500).end('down');
  });
  const jwksDownPort = await listen(jwksDown);
  jwksHuge = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"keys":[');
    const chunk = Buffer.alloc(64 * 1024, 32);
    const pump = () => {
      while (!res.destroyed && jwksHugeBytes < 50 * 1024 * 1024) {
        jwksHugeBytes += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
      res.end(']}');
    };
    pump();
  });
  const jwksHugePort = await listen(jwksHuge);
  const closedPort = await freePort();

  const jwt = (extra: Record<string, unknown>) => ({ jwt: { algorithms: ['RS256'], ...extra } });
  pg = await startPolicyGateway({
    workers: 1,
    args: ['--trusted-hops', '1'],
    services: {
      api: [{ port: up.port }],
      hash: hashUps.map((u) => ({ port: u.port })),
    },
    routes: {
      signed: {
        rules: [prefixRule('api', '/signed', { signature: { keySet: 'partners', clockSkew: '1m' } })],
      },
      ext: {
        rules: [
          prefixRule('api', '/ext', {
            externalAuth: { url: `http://127.0.0.1:${authPort}/check`, requestHeaders: ['authorization'] },
          }),
          prefixRule('down', '/down', { externalAuth: { url: `http://127.0.0.1:${closedPort}/check` } }),
        ],
      },
      regex: {
        rules: [
          {
            name: 'path',
            matches: [{ path: { type: 'RegularExpression', value: '/re/(a+)+' } }],
            backends: [{ consul: { service: 'api' } }],
          },
          {
            name: 'header',
            matches: [
              {
                path: { type: 'PathPrefix', value: '/hdr' },
                headers: [{ type: 'RegularExpression', name: 'x-probe', value: '(x+x+)+y' }],
              },
            ],
            backends: [{ consul: { service: 'api' } }],
          },
          {
            name: 'query',
            matches: [
              {
                path: { type: 'PathPrefix', value: '/qry' },
                queryParams: [{ type: 'RegularExpression', name: 'q', value: '(a|aa)*c' }],
              },
            ],
            backends: [{ consul: { service: 'api' } }],
          },
          prefixRule('ok', '/ok'),
        ],
      },
      jwt: {
        rules: [
          prefixRule('static', '/jwt', { jwt: { keySet: 'jwt-keys', algorithms: ['RS256', 'HS256'] } }),
          prefixRule('down', '/jwks-down', jwt({ jwksUrl: `http://127.0.0.1:${jwksDownPort}/jwks` })),
          prefixRule('huge', '/jwks-huge', jwt({ jwksUrl: `http://127.0.0.1:${jwksHugePort}/jwks` })),
        ],
      },
      hash: {
        rules: [
          {
            ...prefixRule('hash', '/hash', undefined, [{ consul: { service: 'hash' } }]),
            loadBalancer: { type: 'ConsistentHash', consistentHash: { sourceIP: true } },
          },
        ],
      },
      xff: {
        rules: [
          prefixRule('xff', '/xff', {
            ipDeny: ['10.9.0.0/16', '2001:db8:bad::/48'],
            rateLimit: { requests: 3, period: '1h', key: 'ClientAddress' },
          }),
        ],
      },
    },
    secrets: {
      partners: {
        k1: HMAC_KEY,
        'k1-twin': HMAC_KEY,
        pub: String(rulePub.publicKey.export({ type: 'spki', format: 'pem' })),
      },
      'jwt-keys': files,
    },
  });
}, 120_000);

afterAll(async () => {
  await pg?.stop();
  await up?.close();
  for (const u of hashUps) await u.close();
  for (const s of [auth, jwksDown, jwksHuge]) {
    s?.closeAllConnections();
    s?.close();
  }
  if (dir) removeDir(dir);
});

const reasonOf = (a: Answer) => a.json<{ reason?: string }>().reason;

/** Everything a signed request carries, signed over `signPath`. */
function signed(signPath: string, opts: { nonce?: string; key?: string; keyId?: string } = {}) {
  const date = new Date().toUTCString();
  const body = '{"order":1}';
  const digest = contentDigestOf(body);
  const signature = signRequest(opts.key ?? HMAC_KEY, {
    method: 'POST',
    path: signPath,
    query: '',
    date,
    digest,
    nonce: opts.nonce ?? '',
  });
  const headers = (sig: string, keyId = opts.keyId ?? 'k1') => ({
    date,
    'content-digest': digest,
    'x-signature': `keyId="${keyId}", signature="${sig}"`,
    ...(opts.nonce ? { 'x-signature-nonce': opts.nonce } : {}),
  });
  return { body, signature, headers };
}

describe('HMAC replay with another spelling of the same signature', () => {
  it('a captured request is served once: re-spelled signatures (no padding, URL-safe, whitespace, junk, trailing bits) are 401, a twin key id is a replay', async () => {
    // A signature with both `+` and `/`, so the URL-safe spelling differs in two ways.
    let s = signed('/signed/orders', { nonce: 'n0' });
    for (let i = 1; !/\+/.test(s.signature) || !/\//.test(s.signature); i++)
      s = signed('/signed/orders', { nonce: `n${i}` });
    const sig = s.signature;
    const send = (headers: Record<string, string>) =>
      call(pg.gw.port, '/signed/orders', { method: 'POST', headers, body: s.body });
    const before = up.seen.length;
    expect((await send(s.headers(sig))).status).toBe(200);
    expect(up.seen.length).toBe(before + 1);

    // The last character carries 4 bits and 2 zero bits: the next character sets one of those zero bits.
    const trailing = String.fromCharCode(sig.charCodeAt(42) + 1);
    const spellings: Record<string, string> = {
      'no padding': sig.replace(/=+$/, ''),
      'URL-safe alphabet': sig.replaceAll('+', '-').replaceAll('/', '_'),
      'URL-safe without padding': Buffer.from(sig, 'base64').toString('base64url'),
      'a space inside': `${sig.slice(0, 12)} ${sig.slice(12)}`,
      'leading and trailing spaces': ` ${sig} `,
      'junk the decoder skips': `${sig.slice(0, 12)}!${sig.slice(12)}`,
      'a dot': `${sig.slice(0, 12)}.${sig.slice(12)}`,
      'non-zero trailing bits': `${sig.slice(0, 42)}${trailing}=`,
      'double padding': `${sig}=`,
    };
    for (const [name, spelled] of Object.entries(spellings)) {
      const a = await send(s.headers(spelled));
      expect(a.status, name).toBe(401);
      expect(reasonOf(a), name).toBe('malformed');
    }
    // the same bytes under another key id with the same secret
    const twin = await send(s.headers(sig, 'k1-twin'));
    expect(twin.status).toBe(401);
    expect(reasonOf(twin)).toBe('replayed');
    // and the original spelling again
    expect(reasonOf(await send(s.headers(sig)))).toBe('replayed');
    expect(up.seen.length).toBe(before + 1);
  });

  it('a public key in the key set is never an HMAC key: a request MACed with the public PEM is refused', async () => {
    const pem = String(rulePub.publicKey.export({ type: 'spki', format: 'pem' }));
    const s = signed('/signed/orders', { key: pem, keyId: 'pub', nonce: 'pub' });
    const before = up.seen.length;
    const a = await call(pg.gw.port, '/signed/orders', {
      method: 'POST',
      headers: s.headers(s.signature),
      body: s.body,
    });
    expect(a.status).toBe(401);
    expect(reasonOf(a)).toBe('unknown-key');
    expect(up.seen.length).toBe(before);
  });
});

describe('a signed request is verified over the path that is forwarded', () => {
  it('a target that normalization changes is refused on a signature rule, whichever form was signed', async () => {
    const before = up.seen.length;
    for (const [sent, signedOver] of [
      ['/signed/x/../admin', '/signed/x/../admin'],
      ['/signed/x/../admin', '/signed/admin'],
      ['/signed/%61dmin', '/signed/%61dmin'],
      ['/signed/%61dmin', '/signed/admin'],
      ['/signed//admin', '/signed//admin'],
      ['/signed/./admin', '/signed/admin'],
      ['/signed/%2e%2e/signed/admin', '/signed/%2e%2e/signed/admin'],
    ]) {
      const s = signed(signedOver!, { nonce: `${sent}|${signedOver}` });
      const a = await call(pg.gw.port, sent!, {
        method: 'POST',
        headers: s.headers(s.signature),
        body: s.body,
      });
      expect(a.status, `${sent} signed as ${signedOver}`).toBe(401);
      expect(reasonOf(a), sent).toBe('path-not-normalized');
    }
    expect(up.seen.length).toBe(before);
    // the normalized form, signed as sent, passes and is what the upstream gets
    const ok = signed('/signed/admin', { nonce: 'normal' });
    const a = await call(pg.gw.port, '/signed/admin', {
      method: 'POST',
      headers: ok.headers(ok.signature),
      body: ok.body,
    });
    expect(a.status).toBe(200);
    expect(up.seen.at(-1)!.url).toBe('/signed/admin');
  });
});

describe('external auth sees the path the upstream gets', () => {
  it('dot segments, escaped letters and doubled slashes cannot dodge an auth service that forbids /ext/admin', async () => {
    const before = up.seen.length;
    for (const path of [
      '/ext/x/../admin/users',
      '/ext/%61dmin/users',
      '/ext/%61%64%6D%69%6E/users',
      '/ext//admin/users',
      '/ext/./admin/users',
      '/ext/%2e%2e/ext/admin/users',
      '/ext/admin/./users',
    ]) {
      authSaw.length = 0;
      const a = await call(pg.gw.port, path, {
        headers: { 'x-forwarded-uri': '/ext/public', 'x-original-uri': '/ext/public', 'x-original-url': 'x' },
      });
      expect(a.status, path).toBe(403);
      expect(authSaw, path).toEqual([
        { uri: '/ext/admin/users', original: '/ext/admin/users', url: 'http://policy.test/ext/admin/users' },
      ]);
    }
    expect(up.seen.length).toBe(before);
    // the access log writes the same normalized path
    expect(
      (await call(pg.gw.port, '/ext/x/../%61dmin/users', { headers: { 'x-request-id': 'norm-log-1' } }))
        .status,
    ).toBe(403);
    const line = await waitFor(
      () =>
        pg.gw
          .output()
          .split('\n')
          .find((l) => l.includes('"requestId":"norm-log-1"') && l.includes('"status"')),
      { timeoutMs: 10_000, message: 'access log line of norm-log-1' },
    );
    expect(JSON.parse(line.slice(line.indexOf('{')))).toMatchObject({
      path: '/ext/admin/users',
      status: 403,
    });
    // the query is passed as forwarded
    authSaw.length = 0;
    expect((await call(pg.gw.port, '/ext/x/../admin/users?a=1&b')).status).toBe(403);
    expect(authSaw[0]!.uri).toBe('/ext/admin/users?a=1&b');
    // what the auth service allows is what the upstream gets
    authSaw.length = 0;
    expect((await call(pg.gw.port, '/ext/public/./x/../y')).status).toBe(200);
    expect(authSaw[0]!.uri).toBe('/ext/public/y');
    expect(up.seen.at(-1)!.url).toBe('/ext/public/y');
  });

  it('the 503 of an unreachable auth service says only that it is unavailable (no address)', async () => {
    const a = await call(pg.gw.port, '/down/x');
    expect(a.status).toBe(503);
    expect(a.json()).toMatchObject({
      error: 'EDGEGATE_EXTERNAL_AUTH_UNAVAILABLE',
      message: 'the external auth service is unavailable',
    });
    expect(a.text).not.toMatch(/127\.0\.0\.1|ECONNREFUSED|:\d{4,5}/);
  });
});

describe('JWT key confusion', () => {
  const hsToken = (kid: string, key: Uint8Array | Buffer | string) =>
    new SignJWT({ sub: 'mallory' })
      .setProtectedHeader({ alg: 'HS256', kid })
      .setExpirationTime('5m')
      .sign(typeof key === 'string' ? Buffer.from(key) : new Uint8Array(key));
  const rsToken = (kid: string, key: KeyObject) =>
    new SignJWT({ sub: 'alice' }).setProtectedHeader({ alg: 'RS256', kid }).setExpirationTime('5m').sign(key);
  const send = (token: string) =>
    call(pg.gw.port, '/jwt/x', { headers: { authorization: `Bearer ${token}` } });

  it('an HS256 token MACed with a certificate, a PKCS#1 public key or a DER key of the set is refused (algorithms [RS256, HS256])', async () => {
    const before = up.seen.length;
    for (const kid of ['cert', 'pkcs1', 'der']) {
      const variants = [files[kid]!, Buffer.from(files[kid]!.toString('latin1').trim())];
      for (const key of variants) {
        const a = await send(await hsToken(kid, key));
        expect(a.status, kid).toBe(401);
        expect(reasonOf(a), kid).toBe('key-type');
      }
    }
    expect(up.seen.length).toBe(before);
  });

  it('each key verifies its own algorithm family: RS256 with the certificate and PKCS#1 keys, HS256 with the secret', async () => {
    expect((await send(await rsToken('cert', certKey))).status).toBe(200);
    expect((await send(await rsToken('pkcs1', pkcs1Pair.privateKey))).status).toBe(200);
    expect((await send(await rsToken('der', derPair.privateKey))).status).toBe(200);
    expect((await send(await hsToken('hs', HS_SECRET))).status).toBe(200);
    // a shared secret never verifies an RS256 token
    const a = await send(await rsToken('hs', certKey));
    expect(a.status).toBe(401);
    expect(reasonOf(a)).toBe('key-type');
  });

  it('a key file that mixes a certificate and a secret is refused when the set is read: no token verifies with it', async () => {
    for (const key of [files.mixed!, HS_SECRET]) {
      const a = await send(await hsToken('mixed', key));
      expect(a.status).toBe(401);
      expect(reasonOf(a)).toBe('unknown-key');
    }
    const workers = (await (await fetch(`${pg.gw.adminUrl}/debug/workers`)).json()) as {
      workers: {
        stats?: {
          policies?: { keySets: Record<string, { keys: number; refused?: Record<string, string> }> };
        };
      }[];
    };
    const sets = workers.workers[0]!.stats!.policies!.keySets;
    expect(sets['jwt-keys']).toMatchObject({
      keys: 4,
      refused: { mixed: expect.stringMatching(/text around the PEM block/) },
    });
    const m = await scrapeMetrics(pg.gw.adminUrl);
    expect(sumOf(m, 'edgegate_policy_keys_refused', { key_set: 'jwt-keys' })).toBe(1);
    expect(pg.gw.output()).toMatch(/key refused.*mixed|mixed.*key refused/);
  });
});

describe('JWKS endpoints cannot stall or flood a worker', () => {
  const token = () =>
    new SignJWT({ sub: 'a' })
      .setProtectedHeader({ alg: 'RS256', kid: 'k' })
      .setExpirationTime('5m')
      .sign(certKey);

  it('a failing JWKS endpoint is not refetched on every request (negative cache with backoff)', async () => {
    const t = await token();
    for (let i = 0; i < 30; i++) {
      const a = await call(pg.gw.port, '/jwks-down/x', { headers: { authorization: `Bearer ${t}` } });
      expect(a.status).toBe(401);
      expect(reasonOf(a)).toBe('jwks-unavailable');
    }
    // one fetch, plus one per elapsed backoff (1 s, 2 s, …) on a slow machine: far fewer than 30
    expect(jwksDownHits).toBeGreaterThanOrEqual(1);
    expect(jwksDownHits).toBeLessThanOrEqual(4);
  });

  it('a 50 MB JWKS response is cut off at the size cap and refused', async () => {
    const a = await call(pg.gw.port, '/jwks-huge/x', {
      headers: { authorization: `Bearer ${await token()}` },
    });
    expect(a.status).toBe(401);
    expect(reasonOf(a)).toBe('jwks-unavailable');
    expect(jwksHugeBytes).toBeLessThan(16 * 1024 * 1024);
    const m = await scrapeMetrics(pg.gw.adminUrl);
    expect(
      sumOf(m, 'edgegate_policy_jwks_fetches_total', { rule: 'default/jwt#huge', result: 'too-large' }),
    ).toBe(1);
    expect(
      sumOf(m, 'edgegate_policy_jwks_fetches_total', { rule: 'default/jwt#down', result: 'status' }),
    ).toBe(jwksDownHits);
  });
});

describe('consistent hash on the client address behind a trusted proxy', () => {
  it('forty clients behind one trusted proxy spread over the endpoints, each staying on its own', async () => {
    const where = new Map<string, string>();
    for (let i = 1; i <= 40; i++) {
      const a = await call(pg.gw.port, '/hash/x', { headers: { 'x-forwarded-for': `198.51.100.${i}` } });
      expect(a.status).toBe(200);
      where.set(`198.51.100.${i}`, String(a.headers['x-upstream']));
    }
    const used = new Set(where.values());
    expect(used.size).toBeGreaterThanOrEqual(3);
    for (const [client, upstream] of where) {
      // the same client again, its address written with a port this time: same endpoint
      const a = await call(pg.gw.port, '/hash/y', {
        headers: { 'x-forwarded-for': `spoof, ${client}:40000` },
      });
      expect(String(a.headers['x-upstream']), client).toBe(upstream);
    }
  });
});

describe('unparseable X-Forwarded-For entries', () => {
  it('ip:port and bracketed IPv6 entries do not slip past a deny list', async () => {
    for (const entry of [
      '10.9.0.1:5555',
      '10.9.3.4:1',
      '[::ffff:10.9.0.1]:80',
      '[2001:db8:bad::1]:443',
      '[2001:db8:bad::1]',
    ]) {
      const a = await call(pg.gw.port, '/xff/x', { headers: { 'x-forwarded-for': entry } });
      expect(a.status, entry).toBe(403);
    }
  });

  it('garbage entries get no rate-limit bucket of their own: they count as the trusted proxy that sent them', async () => {
    const statuses: number[] = [];
    for (const entry of ['unknown', 'garbage-1', 'garbage-2', '10.1', 'x:y', '_hidden', '999.1.1.1']) {
      statuses.push((await call(pg.gw.port, '/xff/x', { headers: { 'x-forwarded-for': entry } })).status);
    }
    // one bucket of 3 (the peer's), whatever the spelling
    expect(statuses).toEqual([200, 200, 200, 429, 429, 429, 429]);
    const m = await scrapeMetrics(pg.gw.adminUrl);
    expect(sumOf(m, 'edgegate_policy_forwarded_for_invalid_total', { rule: 'default/xff#xff' })).toBe(7);
  });
});

// Last: on a gateway without linear-time matching this blocks the worker for good.
describe('catastrophic regular expressions', () => {
  const probes = async (gw: GatewayProcess) => {
    const long = 'a'.repeat(4000);
    // each attack gets its (correct) answer, and the worker answers the next request
    expect((await call(gw.port, `/re/${long}b`)).status).toBe(404);
    expect((await call(gw.port, '/ok/after-path')).status).toBe(200);
    expect((await call(gw.port, '/hdr/x', { headers: { 'x-probe': 'x'.repeat(4000) } })).status).toBe(404);
    expect((await call(gw.port, '/ok/after-header')).status).toBe(200);
    expect((await call(gw.port, `/qry?q=${long}`)).status).toBe(404);
    expect((await call(gw.port, '/ok/after-query')).status).toBe(200);
    // and the same regexes still match what they should
    expect((await call(gw.port, `/re/${long}`)).status).toBe(200);
    expect((await call(gw.port, '/hdr/x', { headers: { 'x-probe': 'xxy' } })).status).toBe(200);
    expect((await call(gw.port, '/qry?q=aac')).status).toBe(200);
  };

  it('(a+)+ in a path, (x+x+)+y in a header and (a|aa)*c in a query run in linear time in a worker process', async () => {
    await probes(pg.gw);
  });

  it('… and in the single-process shape (--workers 0)', async () => {
    const d = makeTempDir('regex-single');
    const routes = join(d, 'routes');
    mkdirSync(routes);
    const regexRoute = readFileSync(join(pg.dir, 'routes', 'regex.yaml'), 'utf8');
    writeFileSync(join(routes, 'regex.yaml'), regexRoute);
    writeLoopbackCatalog(join(d, 'catalog.yaml'), { api: [up.port] });
    const gw = await startGateway([
      '--workers',
      '0',
      '--routes',
      routes,
      '--catalog',
      join(d, 'catalog.yaml'),
    ]);
    try {
      await probes(gw);
    } finally {
      await gw.stop();
      removeDir(d);
    }
  });

  it('edgegate validate refuses backreferences, lookaround and what the linear engine cannot run, naming object and field', async () => {
    const d = makeTempDir('regex-validate');
    const file = join(d, 'routes.yaml');
    writeFileSync(
      file,
      routeYaml('bad-regex', {
        rules: [
          {
            matches: [
              { path: { type: 'RegularExpression', value: '/(a)\\1' } },
              { headers: [{ type: 'RegularExpression', name: 'x-a', value: '(?=a)a' }] },
              { queryParams: [{ type: 'RegularExpression', name: 'q', value: '(?<!a)b' }] },
              { path: { type: 'RegularExpression', value: '/[0-9]{32}' } },
            ],
            backends: [{ consul: { service: 'api' } }],
          },
        ],
      }),
    );
    try {
      const r = await runCommand(process.execPath, [CLI, 'validate', file]);
      expect(r.code).toBe(1);
      const lines = r.stdout.trim().split('\n');
      expect(lines.slice(0, 4)).toEqual([
        expect.stringMatching(
          /default\/bad-regex: spec\.rules\[0\]\.matches\[0\]\.path\.value: invalid regular expression: backreference \\1/,
        ),
        expect.stringMatching(
          /default\/bad-regex: spec\.rules\[0\]\.matches\[1\]\.headers\[0\]\.value: .*lookahead/,
        ),
        expect.stringMatching(
          /default\/bad-regex: spec\.rules\[0\]\.matches\[2\]\.queryParams\[0\]\.value: .*lookbehind/,
        ),
        expect.stringMatching(
          /default\/bad-regex: spec\.rules\[0\]\.matches\[3\]\.path\.value: .*counted repetition/,
        ),
      ]);
    } finally {
      removeDir(d);
    }
  });
});
