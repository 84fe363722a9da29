/**
 * External auth and header/cookie canaries through `edgegate run --workers 2`.
 * External auth: a 2xx lets the request through with listed auth headers copied (client copies removed); any
 * other answer is returned as is; a slow or unreachable auth service fails closed (503) or open, as configured.
 * Canary: header and cookie matches steer to a tagged subset, on top of the weighted split.
 */
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../support/ports.ts';
import {
  call,
  type PolicyGateway,
  prefixRule,
  type RecordingUpstream,
  startPolicyGateway,
  startRecordingUpstream,
} from './helpers.ts';

let stable: RecordingUpstream;
let canary: RecordingUpstream;
let pg: PolicyGateway;
let auth: Server;
const authSeen: IncomingHttpHeaders[] = [];

beforeAll(async () => {
  auth = createServer((req, res) => {
    authSeen.push(req.headers);
    const a = req.headers.authorization;
    if (req.url === '/slow') {
      setTimeout(() => res.end('late'), 3000).unref();
      return;
    }
    if (a === 'Bearer good') {
      res.writeHead(200, { 'x-auth-user': 'alice', 'x-auth-role': 'buyer', 'x-not-copied': '1' });
      return res.end();
    }
    res.writeHead(a ? 403 : 401, {
      'content-type': 'text/plain',
      'www-authenticate': 'Bearer realm="shop"',
      'x-internal': 'secret',
    });
    res.end(a ? 'forbidden by policy' : 'login first');
  });
  auth.listen({ host: '127.0.0.1', port: 0 });
  await once(auth, 'listening');
  const authUrl = `http://127.0.0.1:${(auth.address() as AddressInfo).port}`;
  const deadPort = await freePort({ udp: false });
  stable = await startRecordingUpstream('stable');
  canary = await startRecordingUpstream('canary');
  const ext = (url: string, failureMode?: string) => ({
    externalAuth: {
      url,
      timeout: '500ms',
      ...(failureMode ? { failureMode } : {}),
      requestHeaders: ['authorization'],
      responseHeaders: ['x-auth-user', 'x-auth-role'],
    },
  });
  const web = [{ consul: { service: 'web', tags: ['stable'] } }];
  const rule = (name: string, prefix: string, policies: unknown) => prefixRule(name, prefix, policies, web);
  pg = await startPolicyGateway({
    services: {
      web: [
        { port: stable.port, tags: ['stable'] },
        { port: canary.port, tags: ['canary'] },
      ],
    },
    routes: {
      auth: {
        rules: [
          rule('checked', '/checked', ext(`${authUrl}/check`)),
          rule('slow-closed', '/slow-closed', ext(`${authUrl}/slow`)),
          rule('down-closed', '/down-closed', ext(`http://127.0.0.1:${deadPort}/check`)),
          rule('down-open', '/down-open', ext(`http://127.0.0.1:${deadPort}/check`, 'Open')),
        ],
      },
      shop: {
        hostnames: ['shop.test'],
        rules: [
          {
            name: 'canary-cookie',
            matches: [{ cookies: [{ name: 'canary', value: 'always' }] }],
            backends: [{ consul: { service: 'web', tags: ['canary'] } }],
          },
          {
            name: 'canary-header',
            matches: [{ headers: [{ name: 'x-canary', value: '1' }] }],
            backends: [{ consul: { service: 'web', tags: ['canary'] } }],
          },
          {
            name: 'split',
            backends: [
              { consul: { service: 'web', tags: ['stable'] }, weight: 90 },
              { consul: { service: 'web', tags: ['canary'] }, weight: 10 },
            ],
          },
        ],
      },
    },
  });
});

afterAll(async () => {
  await pg?.stop();
  await stable?.close();
  await canary?.close();
  auth?.closeAllConnections();
  auth?.close();
});

describe('external auth', () => {
  it('a 2xx lets the request through and copies the listed headers (client copies removed)', async () => {
    const a = await call(pg.gw.port, '/checked/orders?id=7', {
      method: 'POST',
      body: 'payload',
      headers: { authorization: 'Bearer good', 'x-auth-user': 'mallory', cookie: 'sid=1' },
    });
    expect(a.status).toBe(200);
    const seen = stable.seen.at(-1)!;
    expect(seen.headers['x-auth-user']).toBe('alice');
    expect(seen.headers['x-auth-role']).toBe('buyer');
    expect(seen.headers['x-not-copied']).toBeUndefined();
    expect(seen.body.toString()).toBe('payload');
    const asked = authSeen.at(-1)!;
    expect(asked['x-forwarded-method']).toBe('POST');
    expect(asked['x-forwarded-uri']).toBe('/checked/orders?id=7');
    expect(asked['x-forwarded-host']).toBe('policy.test');
    expect(asked.authorization).toBe('Bearer good');
    // only listed request headers go to the auth service
    expect(asked.cookie).toBeUndefined();
  });

  it('any other answer is returned to the client (status, body, www-authenticate) and nothing reaches the upstream', async () => {
    const before = stable.seen.length;
    const denied = await call(pg.gw.port, '/checked/x', { headers: { authorization: 'Bearer bad' } });
    expect(denied.status).toBe(403);
    expect(denied.text).toBe('forbidden by policy');
    expect(denied.headers['www-authenticate']).toBe('Bearer realm="shop"');
    expect(denied.headers['x-internal']).toBeUndefined();
    const anonymous = await call(pg.gw.port, '/checked/x');
    expect(anonymous.status).toBe(401);
    expect(anonymous.text).toBe('login first');
    expect(stable.seen.length).toBe(before);
  });

  it('fails closed on a timeout or an unreachable auth service, open when configured', async () => {
    const slow = await call(pg.gw.port, '/slow-closed', { headers: { authorization: 'Bearer good' } });
    expect(slow.status).toBe(503);
    expect(slow.json<{ error: string }>().error).toBe('EDGEGATE_EXTERNAL_AUTH_UNAVAILABLE');
    const down = await call(pg.gw.port, '/down-closed');
    expect(down.status).toBe(503);
    const open = await call(pg.gw.port, '/down-open', { headers: { 'x-auth-user': 'mallory' } });
    expect(open.status).toBe(200);
    // failing open still never passes a client-supplied copy of an auth header
    expect(stable.seen.at(-1)!.headers['x-auth-user']).toBeUndefined();
  });
});

describe('header and cookie canary', () => {
  const shop = (headers: Record<string, string> = {}) =>
    call(pg.gw.port, '/', { headers: { host: 'shop.test', ...headers } });
  const served = (a: { headers: IncomingHttpHeaders }) => a.headers['x-upstream'];

  it('a canary cookie or header always reaches the canary subset', async () => {
    for (let i = 0; i < 5; i++) {
      expect(served(await shop({ cookie: 'lang=en; canary=always' }))).toBe('canary');
      expect(served(await shop({ 'x-canary': '1' }))).toBe('canary');
    }
  });

  it('other requests follow the weighted split (90/10)', async () => {
    const counts: Record<string, number> = {};
    for (let i = 0; i < 40; i++) {
      const who = String(served(await shop({ cookie: 'canary=never' })));
      counts[who] = (counts[who] ?? 0) + 1;
    }
    console.log(`weighted split over 40 requests (2 workers, smooth WRR each): ${JSON.stringify(counts)}`);
    expect(counts.stable).toBeGreaterThanOrEqual(30);
    expect(counts.canary ?? 0).toBeGreaterThanOrEqual(1);
  });
});
