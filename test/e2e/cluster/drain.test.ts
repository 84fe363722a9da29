/**
 * SIGTERM during load: readiness turns 503 at once, the listener stays open for the drain delay (responses then
 * carry `Connection: close`), slow in-flight requests finish without a reset, and the process exits 0 within the
 * drain timeout. Both shapes: primary + workers, and `--workers 0`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { catalogYaml, type Echo, startEcho, startGateway, tempDir, waitFor } from './helpers.ts';

const tmp = tempDir('edgegate-drain-');
const routesDir = join(tmp.dir, 'routes');
const catalogFile = join(tmp.dir, 'catalog', 'catalog.yaml');
const echoes: Echo[] = [];

beforeAll(async () => {
  mkdirSync(routesDir, { recursive: true });
  mkdirSync(join(tmp.dir, 'catalog'), { recursive: true });
  echoes.push(await startEcho('e1'));
  writeFileSync(
    join(routesDir, 'svc.yaml'),
    `apiVersion: edgegate.io/v1alpha1
kind: GatewayRoute
metadata: { name: svc, namespace: t }
spec:
  rules:
    - matches: [{ path: { type: PathPrefix, value: /svc } }]
      backends: [{ consul: { service: echo, datacenter: dc1 } }]
`,
  );
  writeFileSync(catalogFile, catalogYaml(echoes));
});

afterAll(async () => {
  await Promise.all(echoes.map((e) => e.stop()));
  tmp.remove();
});

const DELAY_MS = 1500;
const TIMEOUT_MS = 8000;
const SLOW_MS = 3000;

describe.each([
  { workers: 2, group: false },
  // The signal reaches the workers too (Ctrl-C, an init signalling the group): the primary's drain still rules.
  { workers: 2, group: true },
  { workers: 0, group: false },
])('SIGTERM with --workers $workers (to the process group: $group)', ({ workers, group }) => {
  test('drains without resetting in-flight requests and exits 0', async () => {
    const g = await startGateway({
      routes: routesDir,
      catalog: catalogFile,
      workers,
      drainDelay: `${DELAY_MS}ms`,
      drainTimeout: `${TIMEOUT_MS}ms`,
      detached: group,
    });
    try {
      // Slow requests in flight on keep-alive connections: they must finish after the listener closed.
      const agent = new Agent({ connections: 8, keepAliveTimeout: 30_000 });
      const slow = Array.from({ length: 6 }, async (_, i) => {
        const r = await request(g.url(`/svc/slow${i}?delay=${SLOW_MS}`), { dispatcher: agent });
        const body = (await r.body.json()) as { name: string };
        return { status: r.statusCode, connection: r.headers.connection, name: body.name };
      });
      await waitFor('the slow requests to reach the upstream side', async () => {
        const w = await g.workers();
        const inFlight = w.workers ? w.workers.reduce((n, x) => n + (x.stats?.inFlight ?? 0), 0) : 6; // single process: no per-worker view; the requests were sent above
        return inFlight >= 6;
      });

      const signalled = Date.now();
      if (group) process.kill(-g.child.pid!, 'SIGTERM');
      else g.child.kill('SIGTERM');
      const notReady = await waitFor('readiness to fail', async () => {
        const r = await g.readyz();
        return r.status === 503 ? r : undefined;
      });
      const notReadyAfter = Date.now() - signalled;

      // During the delay the listener still takes requests (on new connections too), and tells clients to close.
      const during = await request(g.url('/svc/during'), { dispatcher: agent });
      await during.body.dump();
      const fresh = new Agent();
      const late = await request(g.url('/svc/late'), { dispatcher: fresh });
      await late.body.dump();
      await fresh.close();
      const lateAfter = Date.now() - signalled;

      const slowResults = await Promise.all(slow);
      const exit = await g.exited;
      const exitAfter = Date.now() - signalled;
      await agent.close();

      console.log(
        `drain (--workers ${workers}): readiness 503 after ${notReadyAfter} ms (${JSON.stringify(notReady.body.reasons)}); request during delay ${during.statusCode} connection=${during.headers.connection}, new connection ${late.statusCode} at ${lateAfter} ms; slow requests ${JSON.stringify(slowResults.map((r) => r.status))}; exit ${JSON.stringify(exit)} after ${exitAfter} ms`,
      );
      expect(notReadyAfter).toBeLessThan(DELAY_MS);
      expect(notReady.body.reasons.join(' ')).toMatch(/draining/);
      expect(during.statusCode).toBe(200);
      expect(during.headers.connection).toBe('close');
      // Only meaningful if it was really sent within the delay (a loaded machine may be slower).
      if (lateAfter < DELAY_MS - 200) expect(late.statusCode).toBe(200);
      for (const r of slowResults) {
        expect(r.status).toBe(200);
        expect(r.connection).toBe('close');
      }
      expect(exit).toEqual({ code: 0, signal: null });
      // The slow requests outlived the delay, so the exit waited for them, but not beyond the timeout.
      expect(exitAfter).toBeGreaterThanOrEqual(SLOW_MS - 200);
      expect(exitAfter).toBeLessThan(TIMEOUT_MS + 2000);
      expect(g.output()).toMatch(/"message":"drained"/);
    } finally {
      await g.stop();
    }
  });
});
