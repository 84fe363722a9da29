/**
 * Security regressions "admin exposure": the admin port bound every interface and `/debug/routes` printed policy
 * URLs verbatim, credentials and tokens included. Now `--admin` (here every interface, as in a pod) serves only
 * /healthz, /readyz and /metrics; the debug views are on the loopback `--admin-debug` listener; and every debug view
 * of a configuration full of secrets (policy URLs with userinfo and query tokens, secret header values and matches,
 * HMAC and JWT key sets, the Consul ACL token, TLS and mTLS private keys) shows none of them.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { routeYaml, startGateway as startSupportGateway } from '../support/gateway.ts';
import { freePorts } from '../support/ports.ts';
import { sharedConsulPair } from '../support/shared.ts';
import { makeTempDir, removeDir } from '../support/tmp.ts';
import { waitFor } from '../support/wait.ts';
import { type Proc, spawnCli } from './cluster/helpers.ts';
import { makeCert } from './tls/helpers.ts';

const SECRETS = {
  authPassword: 'AuthPassS3cr3t01',
  authQueryToken: 'AuthQueryT0ken02',
  jwksQueryToken: 'JwksQueryT0ken03',
  bearer: 'HeaderBearerT0ken04',
  apiKeyHeader: 'ApiKeyValue05x',
  matchedKey: 'MatchKeyValue06',
  matchedQuery: 'QueryMatchValue07',
  matchedCookie: 'CookieValue08x',
  consulToken: 'ConsulT0ken09-5f1e7c2a',
  hmacKey: 'HmacSecretValue10',
  jwtHmacKey: 'JwtHmacSecretValue11',
  invalidRoutePassword: 'BrokenUrlPass12',
  jwksUserinfo: 'JwksUserPass13',
};

const dir = makeTempDir('eg-admin-exposure');
let gw: Proc | undefined;
let ports: { proxy: number; admin: number; debug: number; tls: number };
let keyBodies: string[] = [];

function writeConfig(): string[] {
  const routes = join(dir, 'routes');
  const secrets = join(dir, 'secrets');
  mkdirSync(routes, { recursive: true });
  mkdirSync(join(secrets, 'partners'), { recursive: true });
  mkdirSync(join(secrets, 'tokens'), { recursive: true });
  writeFileSync(join(secrets, 'partners', 'k1'), SECRETS.hmacKey);
  writeFileSync(join(secrets, 'tokens', 'kid1'), SECRETS.jwtHmacKey);
  const closed = 1; // nothing listens on port 1: the auth and JWKS calls fail, and their errors are recorded
  writeFileSync(
    join(routes, 'secretive.yaml'),
    routeYaml(
      'secretive',
      {
        hostnames: ['secret.test'],
        rules: [
          {
            name: 'ext',
            matches: [
              {
                path: { value: '/ext' },
                headers: [{ name: 'x-api-key', value: SECRETS.matchedKey }],
                queryParams: [{ name: 'access_token', value: SECRETS.matchedQuery }],
                cookies: [{ name: 'session', value: SECRETS.matchedCookie }],
              },
              { path: { value: '/ext' } },
            ],
            filters: [
              {
                type: 'RequestHeaderModifier',
                requestHeaderModifier: {
                  set: [
                    { name: 'Authorization', value: `Bearer ${SECRETS.bearer}` },
                    { name: 'X-Api-Key', value: SECRETS.apiKeyHeader },
                  ],
                },
              },
            ],
            policies: {
              externalAuth: {
                url: `http://gate:${SECRETS.authPassword}@127.0.0.1:${closed}/check?token=${SECRETS.authQueryToken}`,
              },
            },
            backends: [{ consul: { service: 'secretive' } }],
          },
          {
            name: 'jwks',
            matches: [{ path: { value: '/jwks' } }],
            policies: {
              jwt: {
                jwksUrl: `http://jw:${SECRETS.jwksUserinfo}@127.0.0.1:${closed}/jwks?access_token=${SECRETS.jwksQueryToken}`,
                algorithms: ['RS256'],
              },
            },
            backends: [{ consul: { service: 'secretive' } }],
          },
          {
            name: 'hs',
            matches: [{ path: { value: '/hs' } }],
            policies: { jwt: { keySet: 'tokens', algorithms: ['HS256'] }, signature: { keySet: 'partners' } },
            backends: [
              {
                consul: { service: 'secretive' },
                tls: { clientCertificateRef: { name: 'client' } },
              },
            ],
          },
        ],
      },
      'shop',
    ),
  );
  // An invalid route whose problems are reported (and whose URL carries a password).
  writeFileSync(
    join(routes, 'broken.yaml'),
    routeYaml(
      'broken',
      {
        rules: [
          {
            matches: [{ path: { value: '/broken' } }],
            policies: {
              externalAuth: {
                url: `ftp://x:${SECRETS.invalidRoutePassword}@127.0.0.1/check`,
                failureMode: 'Maybe',
              },
            },
            backends: [{ consul: { service: 'secretive' } }],
          },
        ],
      },
      'shop',
    ),
  );
  const served = makeCert(dir, 'served', 'secret.test');
  const client = makeCert(dir, 'client', 'client.test');
  keyBodies = [served.keyPem, client.keyPem].map((pem) => pem.split('\n')[1]!);
  return [
    '--routes',
    routes,
    '--secrets-dir',
    secrets,
    '--tls-cert',
    `${served.cert},${served.key}`,
    '--upstream-client-cert',
    `shop/client=${client.cert},${client.key}`,
  ];
}

beforeAll(async () => {
  const consul = sharedConsulPair().dc1;
  const [proxy, admin, debug, tls] = (await freePorts(4)) as [number, number, number, number];
  ports = { proxy, admin, debug, tls };
  gw = spawnCli(
    [
      'run',
      ...writeConfig(),
      '--consul',
      '--listen',
      `127.0.0.1:${proxy}`,
      '--listen-tls',
      `127.0.0.1:${tls}`,
      // Every interface, as in a pod: what the kubelet and Prometheus reach.
      '--admin',
      `:${admin}`,
      '--admin-debug',
      `127.0.0.1:${debug}`,
      '--workers',
      '1',
      '--log-level',
      'info',
    ],
    { CONSUL_HTTP_ADDR: consul.httpAddr, CONSUL_HTTP_TOKEN: SECRETS.consulToken },
  );
  await waitFor(
    async () => {
      if (gw!.child.exitCode !== null) throw new Error(`edgegate exited:\n${gw!.output()}`);
      return (await fetch(`http://127.0.0.1:${admin}/readyz`).catch(() => undefined))?.status === 200;
    },
    { timeoutMs: 60_000, message: 'edgegate ready', diagnostics: () => gw!.output() },
  );
  // Exercise the policies, so their failures (with the URLs they called) are in the workers' figures.
  for (const [path, headers] of [
    ['/ext', {}],
    ['/jwks', { authorization: 'Bearer a.b.c' }],
    ['/hs', { authorization: 'Bearer a.b.c' }],
  ] as const)
    await fetch(`http://127.0.0.1:${proxy}${path}`, { headers: { host: 'secret.test', ...headers } });
}, 90_000);

afterAll(async () => {
  await gw?.stop();
  removeDir(dir);
});

describe('admin exposure', () => {
  it('--admin on every interface serves health, readiness and metrics, but no debug view', async () => {
    const admin = `http://127.0.0.1:${ports.admin}`;
    expect((await fetch(`${admin}/healthz`)).status).toBe(200);
    expect((await fetch(`${admin}/readyz`)).status).toBe(200);
    const metrics = await fetch(`${admin}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toContain('edgegate_table_version');
    for (const path of [
      '/debug/routes',
      '/debug/sources',
      '/debug/upstreams',
      '/debug/workers',
      '/debug/x',
    ]) {
      const r = await fetch(`${admin}${path}`);
      expect(r.status, path).toBe(404);
      const body = (await r.json()) as { message: string };
      expect(body.message).toContain(`--admin-debug 127.0.0.1:${ports.debug}`);
    }
    const index = (await (await fetch(`${admin}/nope`)).json()) as { paths: string[] };
    expect(index.paths).toEqual(['/healthz', '/readyz', '/metrics']);
  });

  it('every debug view of a configuration full of secrets shows none of them', async () => {
    const debug = `http://127.0.0.1:${ports.debug}`;
    const { paths } = (await (await fetch(`${debug}/nope`)).json()) as { paths: string[] };
    const views = paths.filter((p) => p.startsWith('/debug/'));
    expect(views).toEqual(['/debug/routes', '/debug/sources', '/debug/upstreams', '/debug/workers']);
    let all = '';
    for (const path of [...views, '/healthz', '/readyz', '/metrics']) {
      const r = await fetch(`${debug}${path}`);
      expect(r.status, path).toBe(200);
      const text = await r.text();
      all += text;
      for (const [what, value] of Object.entries(SECRETS)) {
        expect(text, `${what} in ${path}`).not.toContain(value);
        expect(text, `${what} (URL-encoded) in ${path}`).not.toContain(encodeURIComponent(value));
      }
      for (const body of keyBodies) expect(text, `a private key in ${path}`).not.toContain(body);
      expect(text).not.toContain('PRIVATE KEY-----');
    }
    // The views are there, redacted, not empty.
    expect(all).toContain('[redacted]');
    const routes = (await (await fetch(`${debug}/debug/routes`)).json()) as {
      table: { entries: { ruleId: string; policies?: { externalAuth?: { url: string } } }[] };
      statuses: { route: string; accepted: boolean }[];
    };
    const ext = routes.table.entries.find((e) => e.ruleId === 'shop/secretive#ext');
    expect(ext?.policies?.externalAuth?.url).toBe(`http://[redacted]@127.0.0.1:1/check?token=[redacted]`);
    expect(routes.statuses.find((s) => s.route === 'shop/broken')?.accepted).toBe(false);
  });

  it('--admin-debug off turns the debug views off, even on a loopback admin address', async () => {
    const off = await startSupportGateway([
      '--routes',
      join(dir, 'routes'),
      '--catalog',
      writeCatalog(),
      '--admin-debug',
      'off',
      '--workers',
      '1',
    ]);
    try {
      expect((await fetch(`${off.adminUrl}/debug/routes`)).status).toBe(404);
      expect((await fetch(`${off.adminUrl}/readyz`)).status).toBe(200);
    } finally {
      await off.stop();
    }
  }, 60_000);
});

function writeCatalog(): string {
  const file = join(dir, 'catalog.yaml');
  writeFileSync(file, 'datacenters: { dc1: { services: {} } }\n');
  return file;
}
