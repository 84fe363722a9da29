// GatewayRoutes applied with kubectl program edgegate: apply → served (latency measured), update, delete;
// a broken route gets ResolvedRefs=False naming the missing Service while the others keep serving; an invalid
// route gets Accepted=False naming the field, and Events when it turns invalid and valid again.
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningGateway } from '../../../src/run.ts';
import { createEchoServer } from '../../../src/tools/echo-server.ts';
import { kubeLogs, printLogsOnFailure } from '../../support/logs.ts';
import { scrapeMetrics } from '../../support/prom-text.ts';
import { sharedKube } from '../../support/shared.ts';
import { waitFor } from '../../support/wait.ts';
import {
  apply,
  catalogFile,
  ensureNamespace,
  get,
  getRoute,
  installCrd,
  percentile,
  rand,
  routeYaml,
  startGateway,
  waitForCondition,
} from './helpers.ts';

const kube = sharedKube();
printLogsOnFailure(() => kubeLogs(kube));
const ns = `eg-serve-${rand()}`;
const echo = createEchoServer({ name: 'consul-echo' });
let gw: RunningGateway;
let port = 0;

const consulBackend = [{ consul: { service: 'echo', datacenter: 'dc1' } }];

beforeAll(async () => {
  await installCrd(kube);
  await ensureNamespace(kube, ns);
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  await apply(
    kube,
    routeYaml(ns, 'steady', { hostnames: ['steady.example.com'], rules: [{ backends: consulBackend }] }),
  );
  gw = await startGateway(
    kube.kubeconfigPath,
    { namespaces: [ns], leaseNamespace: ns, identity: 'serving-test' },
    catalogFile((echo.address() as AddressInfo).port),
  );
  port = gw.proxyAddress.port;
  await waitFor(async () => (await get(port, 'steady.example.com')).status === 200, { timeoutMs: 15_000 });
});

afterAll(async () => {
  await gw?.stop();
  echo.close();
  await kube.kubectl(['delete', 'namespace', ns, '--wait=false'], { allowFailure: true });
});

/** edgegate_kube_status_writes_total by result, from the gateway's admin /metrics (each series must be there). */
async function statusWrites(): Promise<{ ok: number; error: number }> {
  const prom = await scrapeMetrics(`http://127.0.0.1:${gw.adminAddress.port}`);
  const value = (result: string) => {
    const s = prom.samples.find(
      (x) => x.name === 'edgegate_kube_status_writes_total' && x.labels.result === result,
    );
    if (!s) throw new Error(`edgegate_kube_status_writes_total{result="${result}"} is not exposed`);
    return s.value;
  };
  return { ok: value('ok'), error: value('error') };
}

/**
 * Waits until /metrics counts at least `n` more successful status writes than `before` (the counter moves when the
 * API server's answer to the patch is back, which can be just after the test reads the new status), and checks that
 * none failed.
 */
async function expectStatusWrites(before: number, n: number): Promise<void> {
  const now = await waitFor(
    async () => {
      const w = await statusWrites();
      return w.ok >= before + n && w;
    },
    { timeoutMs: 10_000, message: `edgegate_kube_status_writes_total{result="ok"} ≥ ${before} + ${n}` },
  );
  expect(now.error).toBe(0);
}

describe('kubectl apply programs edgegate', () => {
  it('serves an applied route, follows 20 updates (apply-to-served p50/p99 printed), and a delete removes it', async () => {
    const host = 'latency.example.com';
    const spec = (v: number) => ({
      hostnames: [host],
      rules: [
        {
          filters: [
            {
              type: 'ResponseHeaderModifier',
              responseHeaderModifier: { set: [{ name: 'x-version', value: `v${v}` }] },
            },
          ],
          backends: consulBackend,
        },
      ],
    });
    expect((await get(port, host)).status).toBe(404);
    const samples: number[] = [];
    // From kubectl's start (what a user sees) and from the moment kubectl returned (the controller's share).
    const afterApply: number[] = [];
    for (let v = 1; v <= 20; v++) {
      const started = performance.now();
      await apply(kube, routeYaml(ns, 'latency', spec(v)));
      const applied = performance.now();
      await waitFor(
        async () => {
          const a = await get(port, host);
          return a.status === 200 && a.headers['x-version'] === `v${v}`;
        },
        { timeoutMs: 10_000, intervalMs: 5, message: `version v${v} served` },
      );
      samples.push(performance.now() - started);
      afterApply.push(performance.now() - applied);
    }
    const sorted = [...samples].sort((a, b) => a - b);
    const p50 = percentile(sorted, 50);
    const p99 = percentile(sorted, 99);
    console.log(
      `apply-to-served latency over ${samples.length} kubectl apply changes: p50 ${p50.toFixed(0)} ms, p99 ${p99.toFixed(0)} ms, max ${sorted[sorted.length - 1]!.toFixed(0)} ms (includes the kubectl process, ~100-300 ms)`,
    );
    const after = [...afterApply].sort((a, b) => a - b);
    console.log(
      `  after kubectl returned: p50 ${percentile(after, 50).toFixed(0)} ms, p99 ${percentile(after, 99).toFixed(0)} ms; samples (ms): ${samples.map((x) => x.toFixed(0)).join(' ')}`,
    );
    expect(p99).toBeLessThan(10_000); // generous: correctness, not performance
    const served = await get(port, host);
    expect(JSON.parse(served.body).name).toBe('consul-echo');

    await kube.kubectl(['delete', 'gr', 'latency', '-n', ns]);
    await waitFor(async () => (await get(port, host)).status === 404, { timeoutMs: 10_000 });
    expect((await get(port, 'steady.example.com')).status).toBe(200);
  });

  it('a backend Service that does not exist: ResolvedRefs=False naming it, the others keep serving, a fix flips it', async () => {
    const host = 'broken.example.com';
    const writesBefore = (await statusWrites()).ok;
    await apply(
      kube,
      routeYaml(ns, 'broken', {
        hostnames: [host],
        rules: [{ backends: [{ service: { name: 'nope', port: 80 } }] }],
      }),
    );
    const c = await waitForCondition(kube, ns, 'broken', 'ResolvedRefs', 'False');
    expect(c.reason).toBe('BackendNotFound');
    expect(c.message).toContain(`Service ${ns}/nope not found`);
    // The route is new: the status the test just read was written once at least.
    await expectStatusWrites(writesBefore, 1);
    const obj = await getRoute(kube, ns, 'broken');
    expect(obj?.status?.conditions?.find((x) => x.type === 'Accepted')?.status).toBe('True');
    expect((await get(port, 'steady.example.com')).status).toBe(200);
    expect((await get(port, host)).status).toBe(503); // accepted and served, but no endpoint
    const table = await kube.kubectl(['get', 'gr', '-n', ns]);
    console.log(`kubectl get gr -n ${ns}\n${table.stdout}`);

    await kube.kubectl(['create', 'service', 'clusterip', 'nope', '--tcp=80:8080', '-n', ns]);
    const fixed = await waitForCondition(kube, ns, 'broken', 'ResolvedRefs', 'True');
    expect(fixed.reason).toBe('ResolvedRefs');
    expect((await get(port, 'steady.example.com')).status).toBe(200);
    // ResolvedRefs False, then True: two different statuses, two writes at least.
    await expectStatusWrites(writesBefore, 2);
  });

  it('an invalid route: Accepted=False naming the field, a Warning event, and a Normal event once fixed', async () => {
    const host = 'invalid.example.com';
    const writesBefore = (await statusWrites()).ok;
    // The CRD cannot see this one (a path that is not normalized); the controller's validation does.
    await apply(
      kube,
      routeYaml(ns, 'invalid', {
        hostnames: [host],
        rules: [{ matches: [{ path: { value: '/a//b' } }], backends: consulBackend }],
      }),
    );
    const c = await waitForCondition(kube, ns, 'invalid', 'Accepted', 'False');
    expect(c.reason).toBe('Invalid');
    expect(c.message).toContain('spec.rules[0].matches[0].path.value');
    expect((await get(port, 'steady.example.com')).status).toBe(200);
    await expectStatusWrites(writesBefore, 1);
    const events = async () =>
      (await kube.request('GET', `/apis/events.k8s.io/v1/namespaces/${ns}/events`)).json<{
        items: Array<{ reason: string; type: string; note: string; regarding: { name: string } }>;
      }>().items;
    const warning = await waitFor(
      async () => (await events()).find((e) => e.regarding.name === 'invalid' && e.reason === 'Invalid'),
      { timeoutMs: 10_000 },
    );
    expect(warning.type).toBe('Warning');
    expect(warning.note).toContain('spec.rules[0].matches[0].path.value');
    const described = await kube.kubectl(['describe', 'gr', 'invalid', '-n', ns]);
    console.log(
      `kubectl describe gr invalid -n ${ns} (tail)\n${described.stdout.split('\n').slice(-30).join('\n')}`,
    );

    await apply(
      kube,
      routeYaml(ns, 'invalid', {
        hostnames: [host],
        rules: [{ matches: [{ path: { value: '/a/b' } }], backends: consulBackend }],
      }),
    );
    await waitForCondition(kube, ns, 'invalid', 'Accepted', 'True');
    await waitForCondition(kube, ns, 'invalid', 'Programmed', 'True');
    const valid = await waitFor(
      async () => (await events()).find((e) => e.regarding.name === 'invalid' && e.reason === 'Valid'),
      { timeoutMs: 10_000 },
    );
    expect(valid.type).toBe('Normal');
    expect((await get(port, host, '/a/b')).status).toBe(200);
    // Accepted=False, then Accepted=True and Programmed=True: two different statuses, two writes at least.
    await expectStatusWrites(writesBefore, 2);
  });
});
