/**
 * 200 table updates under steady keep-alive load, against the real CLI (primary + 2 workers): endpoint additions
 * and removals between live echo upstreams, route edits, a new upstream joining and an old one leaving (stopped
 * only once every worker acknowledged the table without it). Not one request may fail.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import {
  catalogYaml,
  type Echo,
  type Gateway,
  startEcho,
  startGateway,
  startLoad,
  tempDir,
  writeAtomic,
} from './helpers.ts';

const UPDATES = 200;
const tmp = tempDir('edgegate-updates-');
const routesDir = join(tmp.dir, 'routes');
const catalogFile = join(tmp.dir, 'catalog', 'catalog.yaml');
const echoes: Echo[] = [];
let gw: Gateway | undefined;

const CATALOG_ROUTE = `apiVersion: edgegate.io/v1alpha1
kind: GatewayRoute
metadata: { name: cat, namespace: t }
spec:
  catalog: { pathPrefix: /cat, requiredTags: [edge] }
`;

/** A route whose edits are visible: a response header carrying the revision, and one extra rule per revision. */
function svcRoute(rev: number): string {
  return `apiVersion: edgegate.io/v1alpha1
kind: GatewayRoute
metadata: { name: svc, namespace: t }
spec:
  rules:
    - matches: [{ path: { type: PathPrefix, value: /svc } }]
      filters:
        - type: URLRewrite
          urlRewrite: { path: { type: ReplacePrefixMatch, replacePrefixMatch: / } }
        - type: ResponseHeaderModifier
          responseHeaderModifier: { set: [{ name: x-rev, value: "r${rev}" }] }
      backends: [{ consul: { service: echo, datacenter: dc1 } }]
    - matches: [{ path: { type: Exact, value: /only-r${rev} } }]
      backends: [{ consul: { service: echo, datacenter: dc1 } }]
`;
}

beforeAll(async () => {
  mkdirSync(routesDir, { recursive: true });
  mkdirSync(join(tmp.dir, 'catalog'), { recursive: true });
  for (let i = 1; i <= 5; i++) echoes.push(await startEcho(`e${i}`));
  writeFileSync(join(routesDir, 'cat.yaml'), CATALOG_ROUTE);
  writeFileSync(join(routesDir, 'svc.yaml'), svcRoute(0));
  writeFileSync(catalogFile, catalogYaml(echoes));
  gw = await startGateway({ routes: routesDir, catalog: catalogFile, workers: 2 });
});

afterAll(async () => {
  await gw?.stop();
  await Promise.all(echoes.map((e) => e.stop()));
  tmp.remove();
});

test('200 table updates under load fail no request', { timeout: 300_000 }, async () => {
  const g = gw!;
  const stopped = new Set<string>();
  const load = startLoad({
    origin: g.url(''),
    clients: 6,
    maxRequests: 40_000,
    paceMs: 15,
    paths: (n) =>
      n % 2 === 0 ? { path: `/cat/dc1/echo/x${n % 7 === 0 ? '?delay=10' : ''}` } : { path: `/svc/y${n}` },
    check: (_status, headers) => {
      const name = String(headers['x-echo-name']);
      // An upstream that was stopped must never be asked again (its port would refuse anyway: status 502).
      if (stopped.has(name)) return `answered by stopped upstream ${name}`;
      return undefined;
    },
  });

  let version = (await g.workers()).version;
  const first = version;
  let late: Echo | undefined;
  for (let i = 1; i <= UPDATES; i++) {
    if (i === 80) {
      // A new upstream process joins and is added from the next catalog write on.
      late = await startEcho('e6');
      echoes.push(late);
    }
    // Endpoints eligible now: e1…e5 before update 100; from then on e5 is gone for good and e6 is in.
    const eligible = echoes.filter((e) => (i < 100 ? e.name !== 'e6' : e.name !== 'e5'));
    if (i % 2 === 0) {
      // Rotate which eligible endpoints are in the table: always at least two, never the same set twice in a row.
      const set = eligible.filter((_, k) => (k + i / 2) % 3 !== 0);
      writeAtomic(catalogFile, catalogYaml(set));
    } else {
      // In place: Node's recursive directory watch on Linux (the routes dir) misses a second rename-replace of
      // the same file (reported to the file-source owner); the catalog's plain directory watch does not.
      writeFileSync(join(routesDir, 'svc.yaml'), svcRoute(i));
    }
    version = await g.waitForVersion(version);
    if (i === 100) {
      // Every worker now serves a table without e5: it may be stopped.
      const e5 = echoes.find((e) => e.name === 'e5')!;
      await e5.stop();
      stopped.add('e5');
    }
  }
  const result = await load.stop();
  const handoff = (await g.workers()).lastHandoff;
  console.log(
    `table updates: ${version - first} versions under load; ${result.ok} requests ok, ${result.failed.length} failed; by upstream ${JSON.stringify(Object.fromEntries(result.byUpstream))}; last hand-off ${JSON.stringify(handoff)}`,
  );
  expect(result.failed.slice(0, 10)).toEqual([]);
  expect(version - first).toBeGreaterThanOrEqual(UPDATES);
  expect(result.ok).toBeGreaterThan(1000);
  // The late upstream really took traffic, the removed one really did before it left.
  expect(result.byUpstream.get('e6') ?? 0).toBeGreaterThan(0);
  expect(result.byUpstream.get('e5') ?? 0).toBeGreaterThan(0);
  // The route edits really reached the workers: the last revision's route answers.
  const last = await fetch(g.url(`/only-r${UPDATES - 1}`));
  expect(last.status).toBe(200);
});
