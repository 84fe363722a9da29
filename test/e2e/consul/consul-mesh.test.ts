/**
 * Consul service-mesh (Connect) upstreams against a real Consul agent (dev mode: Connect on, built-in CA) and
 * edgegate as a real process with `--consul-mesh-service edgegate` (EDGEGATE_CONSUL_MESH_SERVICE). The upstreams
 * are Connect-native HTTPS servers on loopback presenting leaf certificates from the same Consul CA and requiring a
 * client certificate. The tests run in order and share the agent and the gateway.
 */

import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ConsulAgent, startConsulAgent } from '../../support/consul.ts';
import { consulLogs, printLogsOnFailure } from '../../support/logs.ts';
import { scrapeMetrics, sumOf } from '../../support/prom-text.ts';
import { waitFor } from '../../support/wait.ts';
import { type Gateway, startGateway, writeRoutes } from './helpers.ts';
import { type MeshUpstream, meshMaterial, registerNative, startMeshUpstream } from './mesh-upstream.ts';

const ROUTES = {
  'mesh.yaml': `apiVersion: edgegate.io/v1alpha1
kind: GatewayRoute
metadata: { name: mesh, namespace: edge }
spec:
  hostnames: [mesh.test]
  rules:
    - backends:
        - consul: { service: web, mesh: true }
`,
  'impostor.yaml': `apiVersion: edgegate.io/v1alpha1
kind: GatewayRoute
metadata: { name: impostor, namespace: edge }
spec:
  hostnames: [impostor.test]
  rules:
    - backends:
        - consul: { service: payments, mesh: true }
`,
  'forged.yaml': `apiVersion: edgegate.io/v1alpha1
kind: GatewayRoute
metadata: { name: forged, namespace: edge }
spec:
  hostnames: [forged.test]
  rules:
    - backends:
        - consul: { service: ledger, mesh: true }
`,
  'plain.yaml': `apiVersion: edgegate.io/v1alpha1
kind: GatewayRoute
metadata: { name: plain, namespace: edge }
spec:
  hostnames: [plain.test]
  rules:
    - backends:
        - consul: { service: web }
`,
};

let agent: ConsulAgent | undefined;
let gw: Gateway | undefined;
let web: MeshUpstream | undefined;
let forged: Server | undefined;
const routesDir = mkdtempSync(join(tmpdir(), 'edgegate-mesh-routes-'));
const stateDir = mkdtempSync(join(tmpdir(), 'edgegate-mesh-state-'));

printLogsOnFailure(() => [
  ...consulLogs(agent),
  ...(gw ? [{ name: 'edgegate', logPath: gw.proc.logPath }] : []),
]);

/** Consul writes serials as `0a:1b:…`, Node as `0A1B…`. */
const serialOf = (s: string) => s.replaceAll(':', '').toLowerCase().replace(/^0+/, '');

interface Answer {
  status: number;
  body: Record<string, string>;
}

async function get(host: string, path = '/hello'): Promise<Answer> {
  const res = await request(`http://127.0.0.1:${gw!.port}${path}`, { headers: { host } });
  const text = await res.body.text();
  return { status: res.statusCode, body: JSON.parse(text) as Record<string, string> };
}

interface MeshStats {
  consul: { mesh?: { trustDomain?: string; activeRootId?: string; leafSerial?: string } };
}

beforeAll(async () => {
  writeRoutes(routesDir, ROUTES);
  agent = await startConsulAgent({ datacenter: 'dc1' });
  web = await startMeshUpstream(agent, 'web', 'web-1');
  await registerNative(agent, 'web-1', 'web', web.port);
  // `payments` is registered at the web server: it presents web's identity, not payments'.
  await registerNative(agent, 'payments-1', 'payments', web.port);
  // `ledger` presents the right SPIFFE ID in a certificate the Consul CA did not sign.
  const { trustDomain } = await meshMaterial(agent, 'web');
  const dir = mkdtempSync(join(tmpdir(), 'edgegate-mesh-forged-'));
  execFileSync(
    'openssl',
    [
      ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'],
      ...['-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem'), '-days', '2', '-subj', '/CN=ledger'],
      ...['-addext', `subjectAltName=URI:spiffe://${trustDomain}/ns/default/dc/dc1/svc/ledger`],
    ],
    { stdio: 'pipe' },
  );
  forged = createServer(
    { cert: readFileSync(join(dir, 'c.pem')), key: readFileSync(join(dir, 'k.pem')) },
    (_req, res) => res.end('forged'),
  );
  forged.listen(0, '127.0.0.1');
  await once(forged, 'listening');
  await registerNative(agent, 'ledger-1', 'ledger', (forged.address() as AddressInfo).port);
  gw = await startGateway({
    routesDir,
    stateDir,
    consulAddr: agent.httpAddr,
    env: { EDGEGATE_CONSUL_MESH_SERVICE: 'edgegate' },
  });
}, 120_000);

afterAll(async () => {
  await gw?.stop();
  await web?.close();
  forged?.close();
  await agent?.stop();
});

describe('Consul service mesh upstreams (Connect-native, built-in CA)', () => {
  it('reaches a Connect-native upstream over mTLS, presenting the gateway leaf (spiffe …/svc/edgegate)', async () => {
    const { trustDomain } = await meshMaterial(agent!, 'web');
    await waitFor(async () => (await get('mesh.test')).status === 200, {
      timeoutMs: 30_000,
      message: 'mesh.test to be served',
    });
    const a = await get('mesh.test', '/hello?x=1');
    expect(a.status).toBe(200);
    expect(a.body.name).toBe('web-1');
    expect(a.body.url).toBe('/hello?x=1');
    expect(a.body.clientSan).toContain(`URI:spiffe://${trustDomain}/ns/default/dc/dc1/svc/edgegate`);
    const leaf = await agent!.json<{ SerialNumber: string }>('/v1/agent/connect/ca/leaf/edgegate');
    expect(serialOf(a.body.clientSerial!)).toBe(serialOf(leaf.SerialNumber));

    // The upstream refuses a client without a certificate; the same service without `mesh` cannot be reached.
    const noCert = new Agent({
      connect: { ca: (await meshMaterial(agent!, 'web')).roots, checkServerIdentity: () => undefined },
    });
    await expect(
      request(`https://127.0.0.1:${web!.port}/`, { dispatcher: noCert }).then((r) => r.body.text()),
    ).rejects.toThrow();
    await noCert.close();
    const plain = await get('plain.test');
    expect(plain.status).toBe(502);
  });

  it('an upstream impersonating another mesh service is refused: 502 EDGEGATE_MESH_IDENTITY naming both identities', async () => {
    // payments' address answers with web's leaf: a valid Consul certificate, the wrong service.
    const a = await get('impostor.test');
    expect(a.status).toBe(502);
    expect(a.body.error).toBe('EDGEGATE_MESH_IDENTITY');
    expect(a.body.message).toMatch(/\/svc\/web is not the expected spiffe:\/\/.+\/dc\/dc1\/svc\/payments$/);
  });

  it('a forged certificate with the right SPIFFE ID but outside the Consul CA is refused: 502 EDGEGATE_MESH_IDENTITY', async () => {
    const a = await get('forged.test');
    expect(a.status).toBe(502);
    expect(a.body.error).toBe('EDGEGATE_MESH_IDENTITY');
    expect(a.body.message).toMatch(
      /does not chain to the Consul CA roots \([A-Z_]+\); expected spiffe:.+\/svc\/ledger$/,
    );
  });

  it('a denying intention refuses with 403 and the reason, counted in metrics; removing it serves again', async () => {
    await agent!.json('/v1/config', {
      method: 'PUT',
      body: JSON.stringify({
        Kind: 'service-intentions',
        Name: 'web',
        Sources: [{ Name: 'edgegate', Action: 'deny' }],
      }),
    });
    await waitFor(async () => (await get('mesh.test')).status === 403, {
      timeoutMs: 30_000,
      message: 'the deny intention to take effect',
    });
    const a = await get('mesh.test');
    expect(a.body.error).toBe('EDGEGATE_MESH_INTENTION_DENIED');
    expect(a.body.message).toBe(
      'intentions deny edgegate → web: matched L4 intention default/edgegate → default/web (precedence 9, action deny)',
    );
    const metrics = await scrapeMetrics(`http://127.0.0.1:${gw!.adminPort}`);
    expect(
      sumOf(metrics, 'edgegate_requests_total', { code: 'EDGEGATE_MESH_INTENTION_DENIED', service: 'web' }),
    ).toBeGreaterThanOrEqual(2);
    const status = await gw!.admin<{
      consul: { mesh: { intentions: Record<string, { allowed: boolean }> } };
    }>('/debug/sources');
    expect(status.consul.mesh.intentions.web).toMatchObject({ allowed: false });

    await agent!.json('/v1/config/service-intentions/web', { method: 'DELETE' });
    await waitFor(async () => (await get('mesh.test')).status === 200, {
      timeoutMs: 30_000,
      message: 'the gateway to be allowed again',
    });
  });

  it('CA rotation (a new built-in CA key) keeps serving with no restart; the new leaf and roots are used', async () => {
    const before = await meshMaterial(agent!, 'web');
    const gwBefore = (await gw!.admin<MeshStats>('/debug/sources')).consul.mesh!;
    const pid = gw!.proc.pid;
    // Requests run all through the rotation: none may fail.
    const failures: string[] = [];
    let served = 0;
    let stop = false;
    const load = (async () => {
      while (!stop) {
        try {
          const a = await get('mesh.test');
          if (a.status === 200) served++;
          else failures.push(`${a.status} ${JSON.stringify(a.body)}`);
        } catch (err) {
          failures.push(String(err));
        }
      }
    })();
    try {
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const pem = privateKey.export({ type: 'sec1', format: 'pem' }) as string;
      await agent!.json('/v1/connect/ca/configuration', {
        method: 'PUT',
        body: JSON.stringify({ Provider: 'consul', Config: { PrivateKey: pem } }),
      });
      // Consul re-issues leaf certificates at a random moment up to 30 s after a rotation.
      let after = before;
      await waitFor(
        async () => {
          after = await meshMaterial(agent!, 'web');
          return (
            after.activeRootId !== before.activeRootId && after.leaf.SerialNumber !== before.leaf.SerialNumber
          );
        },
        { timeoutMs: 90_000, message: 'Consul to rotate its CA and re-issue the web leaf' },
      );
      // The upstream moves to its new leaf, signed by the new root, and drops its connections: the gateway must
      // trust the new root to reach it.
      await web!.refresh();
      const leaf = new X509Certificate(after.leaf.CertPEM);
      expect(before.roots.some((p) => leaf.checkIssued(new X509Certificate(p)))).toBe(false);
      // The gateway follows without a restart: the new root, and a re-issued leaf that it presents.
      let gwAfter = gwBefore;
      await waitFor(
        async () => {
          gwAfter = (await gw!.admin<MeshStats>('/debug/sources')).consul.mesh!;
          return gwAfter.activeRootId === after.activeRootId && gwAfter.leafSerial !== gwBefore.leafSerial;
        },
        { timeoutMs: 90_000, message: 'the gateway to take the new CA root and its re-issued leaf' },
      );
      // Pooled connections opened before the workers had the new leaf keep presenting the old one (still valid)
      // for as long as the load keeps them busy; new connections present the new one. So the upstream drops its
      // connections now and again (as at its own rotation above) until one made with the new leaf answers.
      let dropped = Date.now();
      await web!.refresh();
      await waitFor(
        async () => {
          const a = await get('mesh.test');
          if (a.status === 200 && serialOf(a.body.clientSerial!) === serialOf(gwAfter.leafSerial!))
            return true;
          if (Date.now() - dropped > 2_000) {
            dropped = Date.now();
            await web!.refresh();
          }
          return false;
        },
        { timeoutMs: 60_000, message: 'the upstream to see the re-issued gateway leaf' },
      );
    } finally {
      stop = true;
      await load;
    }
    console.log(`CA rotation: ${served} requests served, ${failures.length} failed`);
    expect(failures).toEqual([]);
    expect(served).toBeGreaterThan(0);
    expect(gw!.proc.pid).toBe(pid);
    expect(gw!.proc.running()).toBe(true);
  }, 240_000);
});
