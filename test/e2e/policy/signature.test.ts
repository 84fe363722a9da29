/**
 * HMAC request signatures through `edgegate run --workers 2`: a valid signed request reaches the upstream with
 * its exact body; every failure is 401 with a reason and the upstream receives nothing; a replayed request is
 * refused whichever worker gets it; bodies over the limit get 413 before anything is forwarded.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { contentDigestOf, signRequest } from '../../../src/dataplane/policy/signature.ts';
import {
  type Answer,
  call,
  type PolicyGateway,
  type RecordingUpstream,
  startPolicyGateway,
  startRecordingUpstream,
  total,
} from './helpers.ts';

const KEY = 'k1-secret-0123456789';
const RULE = 'default/signed#api';
let up: RecordingUpstream;
let pg: PolicyGateway;

beforeAll(async () => {
  up = await startRecordingUpstream('signed-upstream');
  pg = await startPolicyGateway({
    services: { api: [{ port: up.port }] },
    routes: {
      signed: {
        rules: [
          {
            name: 'api',
            matches: [{ path: { type: 'PathPrefix', value: '/api' } }],
            backends: [{ consul: { service: 'api' } }],
            policies: { signature: { keySet: 'partners', clockSkew: '1m', maxBodySize: 4096 } },
          },
        ],
      },
    },
    secrets: { partners: { k1: KEY, k2: 'other-key' } },
  });
});

afterAll(async () => {
  await pg?.stop();
  await up?.close();
});

interface Signed {
  method: string;
  path: string;
  query: string;
  body: string;
  date?: string;
  keyId?: string;
  key?: string;
  nonce?: string;
}

function signedHeaders(s: Signed): Record<string, string> {
  const date = s.date ?? new Date().toUTCString();
  const digest = contentDigestOf(s.body);
  const signature = signRequest(s.key ?? KEY, {
    method: s.method,
    path: s.path,
    query: s.query,
    date,
    digest,
    nonce: s.nonce ?? '',
  });
  return {
    date,
    'content-digest': digest,
    'x-signature': `keyId="${s.keyId ?? 'k1'}", signature="${signature}"`,
    ...(s.nonce ? { 'x-signature-nonce': s.nonce } : {}),
    'content-type': 'application/json',
  };
}

function send(s: Signed, headers = signedHeaders(s), body: string | Buffer = s.body): Promise<Answer> {
  return call(pg.gw.port, s.query ? `${s.path}?${s.query}` : s.path, { method: s.method, headers, body });
}

/** Runs `fn` and returns how many requests reached the upstream meanwhile. */
async function upstreamCountDuring(fn: () => Promise<void>): Promise<number> {
  const before = up.seen.length;
  await fn();
  return up.seen.length - before;
}

function expectRefused(a: Answer, reason: string) {
  expect(a.status).toBe(401);
  const body = a.json<{ error: string; reason: string }>();
  expect(body.error).toBe('EDGEGATE_SIGNATURE_INVALID');
  expect(body.reason).toBe(reason);
}

describe('request signatures', () => {
  it('a valid signed request reaches the upstream with the exact body it was signed over', async () => {
    const s = { method: 'POST', path: '/api/orders', query: 'dry=1&b=2', body: '{"order":42}', nonce: 'n-1' };
    const a = await send(s);
    expect(a.status).toBe(200);
    const got = up.seen.at(-1)!;
    expect(got.url).toBe('/api/orders?dry=1&b=2');
    expect(got.body.toString()).toBe('{"order":42}');
    expect(got.headers['content-length']).toBe(String(Buffer.byteLength(s.body)));
  });

  it('a signed GET without a body works (digest of the empty body)', async () => {
    const a = await send({ method: 'GET', path: '/api/status', query: '', body: '' });
    expect(a.status).toBe(200);
  });

  it('refuses a body-tampered signed request (digest mismatch) and the upstream receives nothing', async () => {
    const s = { method: 'POST', path: '/api/pay', query: '', body: '{"amount":1}' };
    let a: Answer | undefined;
    const reached = await upstreamCountDuring(async () => {
      a = await send(s, signedHeaders(s), '{"amount":9}');
    });
    expectRefused(a!, 'digest-mismatch');
    expect(reached).toBe(0);
  });

  it('refuses a request whose digest header was replaced to match a tampered body (signature mismatch)', async () => {
    const s = { method: 'POST', path: '/api/pay', query: '', body: '{"amount":1}' };
    const headers = { ...signedHeaders(s), 'content-digest': contentDigestOf('{"amount":9}') };
    let a: Answer | undefined;
    const reached = await upstreamCountDuring(async () => {
      a = await send(s, headers, '{"amount":9}');
    });
    expectRefused(a!, 'bad-signature');
    expect(reached).toBe(0);
  });

  it('refuses a signed request sent to another path or query than signed', async () => {
    const s = { method: 'GET', path: '/api/a', query: 'x=1', body: '' };
    const headers = signedHeaders(s);
    expectRefused(await call(pg.gw.port, '/api/b?x=1', { headers }), 'bad-signature');
    expectRefused(await call(pg.gw.port, '/api/a?x=2', { headers }), 'bad-signature');
    expectRefused(await call(pg.gw.port, '/api/a?x=1', { method: 'DELETE', headers }), 'bad-signature');
  });

  it('refuses a replayed signed request on every worker (pod-wide replay cache)', async () => {
    const s = { method: 'POST', path: '/api/transfer', query: '', body: '{"to":"bob"}' };
    const headers = signedHeaders(s);
    const first = await send(s, headers);
    expect(first.status).toBe(200);
    const before = await pg.workerPolicies();
    const beforeByPid = new Map(
      before.map((w) => [w.pid, w.rules[RULE]?.authFailures['signature:replayed'] ?? 0]),
    );
    let reached = 0;
    // Fresh connections: the kernel spreads them over both workers.
    reached = await upstreamCountDuring(async () => {
      for (let i = 0; i < 24; i++) expectRefused(await send(s, headers), 'replayed');
    });
    expect(reached).toBe(0);
    const after = await pg.workerPolicies();
    const refusedBy = after.filter(
      (w) => (w.rules[RULE]?.authFailures['signature:replayed'] ?? 0) > (beforeByPid.get(w.pid) ?? 0),
    );
    console.log(
      `replays refused per worker: ${after.map((w) => `${w.pid}=${(w.rules[RULE]?.authFailures['signature:replayed'] ?? 0) - (beforeByPid.get(w.pid) ?? 0)}`).join(', ')}`,
    );
    // Both workers refused replays, so at least one refused a request it had never seen itself.
    expect(refusedBy.length).toBe(2);
  });

  it('refuses a date outside the clock-skew window', async () => {
    const old = new Date(Date.now() - 5 * 60_000).toUTCString();
    expectRefused(await send({ method: 'GET', path: '/api/x', query: '', body: '', date: old }), 'date-skew');
    const future = new Date(Date.now() + 5 * 60_000).toUTCString();
    expectRefused(
      await send({ method: 'GET', path: '/api/x', query: '', body: '', date: future }),
      'date-skew',
    );
  });

  it('refuses an unknown key id, a wrong key, a missing or malformed signature header, a missing digest', async () => {
    expectRefused(
      await send({ method: 'GET', path: '/api/x', query: '', body: '', keyId: 'nope' }),
      'unknown-key',
    );
    expectRefused(
      await send({ method: 'GET', path: '/api/x', query: '', body: '', keyId: 'k2' }),
      'bad-signature',
    );
    expectRefused(await call(pg.gw.port, '/api/x'), 'missing');
    expectRefused(await call(pg.gw.port, '/api/x', { headers: { 'x-signature': 'garbage' } }), 'malformed');
    const s = { method: 'GET', path: '/api/x', query: '', body: '' };
    const { 'content-digest': _, ...noDigest } = signedHeaders(s);
    expectRefused(await send(s, noDigest), 'digest-missing');
    // ../ keys are not key ids: nothing outside the key set can be named.
    expectRefused(
      await send({ method: 'GET', path: '/api/x', query: '', body: '', keyId: '../partners/k1' }),
      'unknown-key',
    );
  });

  it('answers 413 to a signed body over the limit, declared or chunked, and forwards nothing', async () => {
    const big = 'x'.repeat(5000);
    const s = { method: 'POST', path: '/api/upload', query: '', body: big };
    let declared: Answer | undefined;
    let chunked: Answer | undefined;
    const reached = await upstreamCountDuring(async () => {
      declared = await send(s);
      chunked = await send(s, { ...signedHeaders(s), 'transfer-encoding': 'chunked' });
    });
    expect(declared!.status).toBe(413);
    expect(declared!.json<{ error: string }>().error).toBe('EDGEGATE_BODY_TOO_LARGE');
    expect(chunked!.status).toBe(413);
    expect(reached).toBe(0);
  });

  it('counts failures by reason per rule', async () => {
    const w = await pg.workerPolicies();
    expect(total(w, RULE, (c) => c.authFailures['signature:digest-mismatch'] ?? 0)).toBeGreaterThanOrEqual(1);
    expect(total(w, RULE, (c) => c.authFailures['signature:replayed'] ?? 0)).toBeGreaterThanOrEqual(24);
    expect(total(w, RULE, (c) => c.passed)).toBeGreaterThanOrEqual(3);
    // sanity: the digest helper is the SHA-256 of the body
    expect(contentDigestOf('')).toBe(`sha-256=:${createHash('sha256').update('').digest('base64')}:`);
  });
});
