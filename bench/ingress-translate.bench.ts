/**
 * Ingress source benchmark: one snapshot's translation (api/ingress/ingress-translate.ts) — the work every Ingress
 * or IngressClass event costs the primary, since ingress-nginx's semantics (canaries, regex hosts) cross Ingresses
 * and the whole set is translated at once — and the compile of its routes.
 *   node bench/ingress-translate.bench.ts [--ingresses N] [--paths N] [--runs N]
 * Prints the median translate ms and compile ms.
 */
import { parseArgs } from 'node:util';
import { translateIngresses } from '../src/api/ingress/ingress-translate.ts';
import type { IngressObject } from '../src/api/ingress/ingress-types.ts';
import { compile } from '../src/compile/compile.ts';

const { values } = parseArgs({
  options: {
    ingresses: { type: 'string', default: '2000' },
    paths: { type: 'string', default: '5' },
    runs: { type: 'string', default: '7' },
  },
});
const count = Number(values.ingresses);
const paths = Number(values.paths);
const N = 'nginx.ingress.kubernetes.io/';

const ingresses: IngressObject[] = Array.from({ length: count }, (_, i) => ({
  metadata: {
    name: `app-${i}`,
    namespace: `ns-${i % 50}`,
    uid: `uid-${i}`,
    creationTimestamp: new Date(1e12 + i * 1000).toISOString(),
    annotations: {
      [`${N}proxy-read-timeout`]: '30',
      [`${N}limit-rps`]: '10',
      ...(i % 10 === 0 ? { [`${N}use-regex`]: 'true', [`${N}rewrite-target`]: '/$1' } : {}),
    },
  },
  spec: {
    tls: [{ hosts: [`app-${i}.example.com`], secretName: 'tls' }],
    rules: [
      {
        host: `app-${i}.example.com`,
        http: {
          paths: Array.from({ length: paths }, (_, j) => ({
            path: i % 10 === 0 ? `/p${j}/(.*)` : `/p${j}`,
            pathType: i % 10 === 0 ? 'ImplementationSpecific' : 'Prefix',
            backend: { service: { name: `svc-${j}`, port: { number: 80 } } },
          })),
        },
      },
    ],
  },
}));

const median = (xs: number[]) => xs.sort((a, b) => a - b)[xs.length >> 1]!;
const translateMs: number[] = [];
const compileMs: number[] = [];
let routes = 0;
for (let r = 0; r < Number(values.runs) + 2; r++) {
  const t0 = performance.now();
  const t = translateIngresses(ingresses, { namePrefix: 'ingress.', keepIdentity: true });
  const t1 = performance.now();
  compile({
    routes: t.routes.map((raw) => ({ raw, origin: 'ingress' })),
    catalog: { localDatacenter: 'dc1', datacenters: {} },
  });
  const t2 = performance.now();
  routes = t.routes.length;
  if (r >= 2) {
    translateMs.push(t1 - t0);
    compileMs.push(t2 - t1);
  }
}
console.log(
  `${count} Ingresses × ${paths} paths → ${routes} routes: translate ${median(translateMs).toFixed(1)} ms, compile ${median(compileMs).toFixed(1)} ms (median of ${translateMs.length})`,
);
