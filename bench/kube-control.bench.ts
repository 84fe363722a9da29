/**
 * The control plane against a real API server: etcd + kube-apiserver from the test harness
 * (test/support/kube.ts), `edgegate run --kube` as a real process with its production shape (primary + workers,
 * a state dir), GatewayRoutes applied with the real kubectl. For each size (default 1,000 and 5,000 routes,
 * spread over 100 Services with an EndpointSlice each) it measures, on an empty namespace:
 *
 *   - `kubectl apply` of all routes, and apply-finished → every route Programmed=True for its generation (seen
 *     through a watch, so nothing is missed between polls);
 *   - status writes per route (edgegate_kube_status_writes_total, by result) and the tables published meanwhile
 *     (the hold-off's batches);
 *   - primary CPU (utime + stime from /proc) and RSS (sampled every 250 ms: peak), workers' RSS;
 *   - single-route updates (a new path for one route, 5 times): writes caused, apply-finished → Programmed, primary
 *     CPU per update;
 *   - deleting every route: time until the table is empty, writes (should be none), and RSS of the primary and
 *     workers afterwards.
 *
 *   node bench/kube-control.bench.ts [--routes 1000,5000] [--workers 2] [--updates 5] [--heap] [--out DIR]
 *
 * `--profile DIR`: CPU profiles (`--cpu-prof`) of the primary and the workers, written to DIR when the gateway stops.
 * `--memory`: diagnostic reports only (RSS, V8 heap committed and used, malloc heap, at the same points and a
 * minute after the delete-all). `--heap`: those, and heap snapshots of the primary and every worker (`--heapsnapshot-signal`, each taken after a full GC,
 * so only live objects) at start, after each apply and after each delete-all, summarized by constructor
 * (bench/lib/heap-summary.ts): live heap back at its start value after the deletes means no leak, whatever RSS
 * says.
 *
 * Writes bench/results/kube-control-latest.{md,json} and a dated copy.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { KubeConfig, Watch } from '@kubernetes/client-node';
import { gatewayRouteCrdYaml } from '../src/api/crd.ts';
import { type KubeServer, startKube } from '../test/support/kube.ts';
import { freePorts } from '../test/support/ports.ts';
import { type ManagedProcess, startProcess } from '../test/support/proc.ts';
import { parsePromText } from '../test/support/prom-text.ts';
import { logPathFor, makeTempDir } from '../test/support/tmp.ts';
import { type HeapSummary, heapGrowth, summarizeHeap } from './lib/heap-summary.ts';
import { BENCH_DIR, log, REPO_DIR } from './lib/system.ts';

const { values } = parseArgs({
  options: {
    routes: { type: 'string', default: '1000,5000' },
    workers: { type: 'string', default: '2' },
    updates: { type: 'string', default: '5' },
    services: { type: 'string', default: '100' },
    heap: { type: 'boolean', default: false },
    memory: { type: 'boolean', default: false },
    profile: { type: 'string' },
    out: { type: 'string' },
  },
});
const SIZES = values.routes!.split(',').map(Number);
const WORKERS = Number(values.workers);
const UPDATES = Number(values.updates);
const SERVICES = Number(values.services);
const NS = 'bench';
const HEAP_DIR = values.heap || values.memory ? makeTempDir('eg-bench-heap') : undefined;
/** Heap snapshots too (they allocate a lot of native memory themselves: `--memory` leaves them out). */
const SNAPSHOTS = values.heap === true;
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

const round = (n: number, d = 1) => Math.round(n * 10 ** d) / 10 ** d;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

/** utime + stime of one process, in ms. */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
}

function rssMB(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return round(Number(m?.[1] ?? 0) / 1024);
}

function children(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

/** Samples the primary's RSS every 250 ms; `peak()` since the last reset. */
function rssSampler(pid: number) {
  let peak = 0;
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, rssMB(pid));
    } catch {}
  }, 250);
  return {
    reset: () => {
      peak = rssMB(pid);
    },
    peak: () => Math.max(peak, rssMB(pid)),
    stop: () => clearInterval(timer),
  };
}

function servicesYaml(): string {
  const docs: string[] = [];
  for (let s = 0; s < SERVICES; s++) {
    docs.push(
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: `svc${s}`, namespace: NS },
        spec: { ports: [{ name: 'http', port: 80, targetPort: 8080 }] },
      }),
      JSON.stringify({
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: { name: `svc${s}-1`, namespace: NS, labels: { 'kubernetes.io/service-name': `svc${s}` } },
        addressType: 'IPv4',
        ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
        endpoints: [1, 2, 3].map((k) => ({
          addresses: [`10.${Math.floor(s / 250)}.${s % 250}.${k}`],
          conditions: { ready: true },
        })),
      }),
    );
  }
  return docs.join('\n---\n');
}

function routeDoc(i: number, rev = 0): string {
  return JSON.stringify({
    apiVersion: 'edgegate.io/v1alpha1',
    kind: 'GatewayRoute',
    metadata: { name: `r${i}`, namespace: NS },
    spec: {
      hostnames: [`h${i % 50}.example.com`],
      rules: [
        {
          matches: [{ path: { type: 'PathPrefix', value: rev ? `/r${i}/v${rev}` : `/r${i}` } }],
          backends: [{ service: { name: `svc${i % SERVICES}`, port: 80 } }],
        },
      ],
    },
  });
}

interface RouteState {
  generation: number;
  programmedGeneration: number | undefined;
}

/** Every GatewayRoute of the namespace through one watch: which are Programmed=True for their generation. */
async function watchRoutes(kube: KubeServer) {
  const kc = new KubeConfig();
  kc.loadFromFile(kube.kubeconfigPath);
  const routes = new Map<string, RouteState>();
  let current = 0;
  const listeners = new Set<() => void>();
  const isCurrent = (s: RouteState | undefined) => s !== undefined && s.programmedGeneration === s.generation;
  const list = await kube.request('GET', `/apis/edgegate.io/v1alpha1/namespaces/${NS}/gatewayroutes`);
  let rv = list.json<{ metadata: { resourceVersion: string } }>().metadata.resourceVersion;
  let req: AbortController | undefined;
  let stopped = false;
  type Obj = {
    metadata: { name: string; generation: number; resourceVersion: string };
    status?: { conditions?: { type: string; status: string; observedGeneration?: number }[] };
  };
  const onEvent = (type: string, obj: Obj) => {
    if (type === 'BOOKMARK' || type === 'ERROR') return;
    rv = obj.metadata.resourceVersion;
    const before = isCurrent(routes.get(obj.metadata.name));
    if (type === 'DELETED') routes.delete(obj.metadata.name);
    else {
      const p = obj.status?.conditions?.find((c) => c.type === 'Programmed' && c.status === 'True');
      routes.set(obj.metadata.name, {
        generation: obj.metadata.generation,
        programmedGeneration: p?.observedGeneration,
      });
    }
    const after = isCurrent(routes.get(obj.metadata.name));
    current += (after ? 1 : 0) - (before ? 1 : 0);
    for (const l of listeners) l();
  };
  const start = async (): Promise<void> => {
    req = await new Watch(kc).watch(
      `/apis/edgegate.io/v1alpha1/namespaces/${NS}/gatewayroutes`,
      { resourceVersion: rv, allowWatchBookmarks: true },
      onEvent,
      () => {
        if (!stopped) void start();
      },
    );
  };
  await start();
  return {
    get total() {
      return routes.size;
    },
    get programmed() {
      return current;
    },
    state: (name: string) => routes.get(name),
    /** Resolves when `cond` holds (checked after every event), or rejects after `timeoutMs`. */
    until(cond: () => boolean, timeoutMs: number, what: string): Promise<number> {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (!cond()) return;
          listeners.delete(check);
          clearTimeout(timer);
          resolve(performance.now());
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`${what}: not within ${timeoutMs} ms`));
        }, timeoutMs);
        listeners.add(check);
        check();
      });
    },
    stop() {
      stopped = true;
      req?.abort();
    },
  };
}

async function metrics(adminPort: number): Promise<Map<string, number>> {
  const res = await fetch(`http://127.0.0.1:${adminPort}/metrics`);
  const prom = parsePromText(await res.text());
  const out = new Map<string, number>();
  for (const s of prom.samples) {
    const labels = Object.entries(s.labels)
      .filter(([k]) => k === 'result')
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    const key = labels ? `${s.name}{${labels}}` : s.name;
    if (!s.labels.worker || s.name.startsWith('edgegate_')) out.set(key, (out.get(key) ?? 0) + s.value);
  }
  return out;
}

async function settled(adminPort: number, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const m = await metrics(adminPort);
    if (m.get('edgegate_kube_status_queue') === 0 && m.get('edgegate_routes_awaiting_workers') === 0) return;
    if (performance.now() > deadline) throw new Error('the gateway did not settle');
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function lastHandoff(
  adminPort: number,
): Promise<{ bytes: number; ms: number; maxApplyMs: number } | undefined> {
  const res = await fetch(`http://127.0.0.1:${adminPort}/debug/workers`);
  return ((await res.json()) as { lastHandoff?: { bytes: number; ms: number; maxApplyMs: number } })
    .lastHandoff;
}

/** Heap snapshots of the primary and its workers (after a full GC each), summarized; the files are removed. */
async function heapSnapshots(
  pid: number,
): Promise<{ primary: HeapSummary; workers: HeapSummary[] } | undefined> {
  const dir = HEAP_DIR;
  if (!dir || !SNAPSHOTS) return undefined;
  const take = async (p: number): Promise<HeapSummary> => {
    const mine = () => readdirSync(dir).filter((f) => f.includes(`.${p}.`) && f.endsWith('.heapsnapshot'));
    const before = new Set(mine());
    process.kill(p, 'SIGUSR2');
    for (;;) {
      await new Promise((r) => setTimeout(r, 500));
      const file = mine().find((f) => !before.has(f));
      if (!file) continue;
      const path = join(dir, file);
      const size = statSync(path).size;
      await new Promise((r) => setTimeout(r, 1000));
      if (statSync(path).size !== size) continue;
      try {
        const summary = summarizeHeap(path);
        rmSync(path);
        return summary;
      } catch {
        // still being written
      }
    }
  };
  const primary = await take(pid);
  const workers: HeapSummary[] = [];
  for (const c of children(pid)) workers.push(await take(c));
  return { primary, workers };
}

const mb = (bytes: number) => round(bytes / 1024 / 1024);

interface MemoryReport {
  rssMB: number;
  /** V8 heap committed (what the process holds for its heap) and live after the last GC. */
  heapCommittedMB: number;
  heapUsedMB: number;
  /** From /proc/PID/smaps_rollup: anonymous memory, and the part of it freed lazily (MADV_FREE: reclaimed only
   * when the kernel needs memory, counted in RSS until then). */
  anonymousMB: number;
  lazyFreeMB: number;
  /** RSS in the brk heap (glibc malloc's main arena). */
  brkHeapMB: number;
}

function smaps(p: number): { anonymousMB: number; lazyFreeMB: number; brkHeapMB: number } {
  const rollup = readFileSync(`/proc/${p}/smaps_rollup`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(rollup)?.[1] ?? 0);
  // The [heap] mapping's Rss line follows its header line.
  const all = readFileSync(`/proc/${p}/smaps`, 'utf8');
  const heap = /\[heap\]\n(?:.*\n)*?Rss:\s+(\d+)/.exec(all);
  return {
    anonymousMB: round(kb('Anonymous') / 1024),
    lazyFreeMB: round(kb('LazyFree') / 1024),
    brkHeapMB: round(Number(heap?.[1] ?? 0) / 1024),
  };
}

/** A diagnostic report (`--report-on-signal`, SIGWINCH) of the primary and each worker: RSS against V8's heap. */
async function memoryReports(
  pid: number,
): Promise<{ primary: MemoryReport; workers: MemoryReport[] } | undefined> {
  const dir = HEAP_DIR;
  if (!dir) return undefined;
  const take = async (p: number): Promise<MemoryReport> => {
    const mine = () => readdirSync(dir).filter((f) => f.startsWith('report.') && f.includes(`.${p}.`));
    const before = new Set(mine());
    process.kill(p, 'SIGWINCH');
    for (;;) {
      await new Promise((r) => setTimeout(r, 300));
      const file = mine().find((f) => !before.has(f));
      if (!file) continue;
      try {
        const r = JSON.parse(readFileSync(join(dir, file), 'utf8')) as {
          javascriptHeap: { totalCommittedMemory?: number; totalMemory: number; usedMemory: number };
          resourceUsage: { rss: number };
        };
        rmSync(join(dir, file));
        return {
          rssMB: mb(Number(r.resourceUsage.rss)),
          heapCommittedMB: mb(r.javascriptHeap.totalCommittedMemory ?? r.javascriptHeap.totalMemory),
          heapUsedMB: mb(r.javascriptHeap.usedMemory),
          ...smaps(p),
        };
      } catch {
        // still being written
      }
    }
  };
  const primary = await take(pid);
  const workers: MemoryReport[] = [];
  for (const c of children(pid)) workers.push(await take(c));
  return { primary, workers };
}

async function kubectlApplyFile(kube: KubeServer, file: string): Promise<number> {
  const t0 = performance.now();
  await kube.kubectl(['apply', '-f', file], { timeoutMs: 900_000 });
  return performance.now() - t0;
}

const started = new Date();
const machine = {
  nproc: cpus().length,
  cpuModel: cpus()[0]?.model ?? 'unknown',
  loadAverageAtStart: loadavg().map((l) => round(l, 2)),
};
const results: Record<string, unknown>[] = [];
let kube: KubeServer | undefined;
let gw: ManagedProcess | undefined;
let sampler: ReturnType<typeof rssSampler> | undefined;
let watcher: Awaited<ReturnType<typeof watchRoutes>> | undefined;
try {
  kube = await startKube();
  log(`kube-apiserver up at ${kube.url}`);
  await kube.kubectl(['apply', '--server-side', '-f', '-'], { input: gatewayRouteCrdYaml() });
  // Right after the create, the CRD may have no conditions yet (kubectl wait then fails at once): ask again.
  for (let i = 0; ; i++) {
    const r = await kube.kubectl(
      ['wait', '--for=condition=Established', '--timeout=60s', 'crd/gatewayroutes.edgegate.io'],
      { allowFailure: true },
    );
    if (r.code === 0) break;
    if (i === 20) throw new Error(`the CRD is not established: ${r.stderr}`);
    await new Promise((res) => setTimeout(res, 500));
  }
  await kube.kubectl(['create', 'namespace', NS]);
  const dir = makeTempDir('eg-bench-kube');
  writeFileSync(join(dir, 'services.yaml'), servicesYaml());
  await kube.kubectl(['apply', '-f', join(dir, 'services.yaml')], { timeoutMs: 300_000 });
  log(`${SERVICES} Services with EndpointSlices applied`);

  const [listen, admin] = (await freePorts(2)) as [number, number];
  gw = startProcess({
    name: 'edgegate-bench-kube',
    command: process.execPath,
    args: [
      join(REPO_DIR, 'cmd', 'edgegate.ts'),
      'run',
      '--kube',
      '--kubeconfig',
      kube.kubeconfigPath,
      '--watch-namespaces',
      NS,
      '--lease-namespace',
      NS,
      '--retry-period',
      '500ms',
      '--workers',
      String(WORKERS),
      '--state-dir',
      makeTempDir('eg-bench-kube-state'),
      '--drain-delay',
      '0s',
      '--listen',
      `127.0.0.1:${listen}`,
      '--admin',
      `127.0.0.1:${admin}`,
      '--access-log',
      'off',
      '--log-level',
      'warn',
    ],
    env: {
      ...process.env,
      POD_NAME: 'bench',
      NODE_OPTIONS: [
        ...(HEAP_DIR
          ? [
              `--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${HEAP_DIR}`,
              `--report-on-signal --report-signal=SIGWINCH --report-directory=${HEAP_DIR}`,
            ]
          : []),
        // `--profile DIR`: CPU profiles of the primary and the workers, written when the gateway stops.
        ...(values.profile ? [`--cpu-prof --cpu-prof-dir=${values.profile}`] : []),
      ].join(' '),
    },
    logPath: logPathFor('edgegate-bench-kube'),
  });
  const pid = gw.pid;
  for (;;) {
    try {
      const r = await fetch(`http://127.0.0.1:${admin}/readyz`);
      if (r.status === 200) break;
    } catch {}
    await new Promise((r) => setTimeout(r, 200));
  }
  log(`edgegate up (pid ${pid}, ${WORKERS} workers)`);
  sampler = rssSampler(pid);
  watcher = await watchRoutes(kube);
  const w = watcher;
  const memAtStart = await memoryReports(pid);
  const heapAtStart = await heapSnapshots(pid);

  for (const n of SIZES) {
    log(`— ${n} routes —`);
    const file = join(dir, `routes-${n}.yaml`);
    writeFileSync(file, Array.from({ length: n }, (_, i) => routeDoc(i)).join('\n---\n'));
    await settled(admin, 60_000);
    const m0 = await metrics(admin);
    const cpu0 = cpuMs(pid);
    const workerCpu0 = children(pid).reduce((a, c) => a + cpuMs(c), 0);
    sampler.reset();
    // The writer's queue and the routes waiting for the workers, sampled every second while the batch goes in.
    const peaks = { statusQueue: 0, awaitingWorkers: 0 };
    const sampling = setInterval(() => {
      void metrics(admin).then(
        (m) => {
          peaks.statusQueue = Math.max(peaks.statusQueue, m.get('edgegate_kube_status_queue') ?? 0);
          peaks.awaitingWorkers = Math.max(
            peaks.awaitingWorkers,
            m.get('edgegate_routes_awaiting_workers') ?? 0,
          );
        },
        () => {},
      );
    }, 1000);
    const applyMs = await kubectlApplyFile(kube, file);
    const applied = performance.now();
    log(`kubectl apply of ${n}: ${round(applyMs / 1000)} s; ${w.programmed}/${n} Programmed at its end`);
    const allProgrammed = await w.until(
      () => w.total === n && w.programmed === n,
      900_000,
      `${n} Programmed`,
    );
    await settled(admin, 300_000);
    clearInterval(sampling);
    const m1 = await metrics(admin);
    const delta = (k: string) => (m1.get(k) ?? 0) - (m0.get(k) ?? 0);
    const applyCpuMs = cpuMs(pid) - cpu0;
    const applyWorkerCpuMs = children(pid).reduce((a, c) => a + cpuMs(c), 0) - workerCpu0;
    const handoff = await lastHandoff(admin);
    const step: Record<string, unknown> = {
      routes: n,
      kubectlApplyS: round(applyMs / 1000),
      applyToAllProgrammedS: round((allProgrammed - applied) / 1000, 2),
      statusWrites: {
        ok: delta('edgegate_kube_status_writes_total{result=ok}'),
        unchanged: delta('edgegate_kube_status_writes_total{result=unchanged}'),
        notFound: delta('edgegate_kube_status_writes_total{result=not_found}'),
        error: delta('edgegate_kube_status_writes_total{result=error}'),
      },
      writesPerRoute: round(delta('edgegate_kube_status_writes_total{result=ok}') / n, 2),
      tablesPublished: delta('edgegate_table_version'),
      peakStatusQueue: peaks.statusQueue,
      peakRoutesAwaitingWorkers: peaks.awaitingWorkers,
      primaryCpuS: round(applyCpuMs / 1000, 2),
      primaryCpuMsPerRoute: round(applyCpuMs / n, 2),
      workersCpuS: round(applyWorkerCpuMs / 1000, 2),
      primaryRssPeakMB: sampler.peak(),
      primaryRssAfterMB: rssMB(pid),
      workersRssMB: children(pid).map(rssMB),
      lastHandoff: handoff,
    };
    const memAfterApply = await memoryReports(pid);
    const heapAfterApply = await heapSnapshots(pid);
    log(JSON.stringify(step));

    // Single-route updates: one route's path, UPDATES times.
    const updates: { writes: number; programmedMs: number; primaryCpuMs: number }[] = [];
    for (let u = 1; u <= UPDATES; u++) {
      const i = Math.floor((n * u) / (UPDATES + 1));
      const name = `r${i}`;
      const gen = w.state(name)?.generation ?? 1;
      const before = await metrics(admin);
      const c0 = cpuMs(pid);
      await kube.kubectl(['apply', '-f', '-'], { input: routeDoc(i, u) });
      const t0 = performance.now();
      const t1 = await w.until(
        () => {
          const s = w.state(name);
          return s !== undefined && s.generation > gen && s.programmedGeneration === s.generation;
        },
        60_000,
        `${name} Programmed after its update`,
      );
      await settled(admin, 60_000);
      const after = await metrics(admin);
      updates.push({
        writes:
          (after.get('edgegate_kube_status_writes_total{result=ok}') ?? 0) -
          (before.get('edgegate_kube_status_writes_total{result=ok}') ?? 0),
        programmedMs: round(t1 - t0),
        primaryCpuMs: round(cpuMs(pid) - c0),
      });
    }
    step.singleRouteUpdates = {
      updates,
      writesMax: Math.max(...updates.map((x) => x.writes)),
      programmedMsMedian: median(updates.map((x) => x.programmedMs)),
      programmedMsMax: Math.max(...updates.map((x) => x.programmedMs)),
      primaryCpuMsMedian: median(updates.map((x) => x.primaryCpuMs)),
    };
    log(`single-route updates: ${JSON.stringify(step.singleRouteUpdates)}`);

    // Delete everything: the table empties, nothing is written, memory afterwards.
    const before = await metrics(admin);
    const c0 = cpuMs(pid);
    const t0 = performance.now();
    await kube.kubectl(['delete', 'gr', '--all', '-n', NS, '--wait=false'], { timeoutMs: 900_000 });
    const deleted = performance.now();
    await w.until(() => w.total === 0, 900_000, 'every route deleted');
    for (;;) {
      const r = (await (await fetch(`http://127.0.0.1:${admin}/debug/routes`)).json()) as {
        table?: { entries: unknown[] };
      };
      if ((r.table?.entries.length ?? 0) === 0) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    await settled(admin, 60_000);
    const emptied = performance.now();
    const after = await metrics(admin);
    step.deleteAll = {
      kubectlDeleteS: round((deleted - t0) / 1000),
      toEmptyTableS: round((emptied - t0) / 1000),
      statusWrites:
        (after.get('edgegate_kube_status_writes_total{result=ok}') ?? 0) -
        (before.get('edgegate_kube_status_writes_total{result=ok}') ?? 0),
      notFound:
        (after.get('edgegate_kube_status_writes_total{result=not_found}') ?? 0) -
        (before.get('edgegate_kube_status_writes_total{result=not_found}') ?? 0),
      tablesPublished:
        (after.get('edgegate_table_version') ?? 0) - (before.get('edgegate_table_version') ?? 0),
      primaryCpuS: round((cpuMs(pid) - c0) / 1000, 2),
      primaryRssMB: rssMB(pid),
      workersRssMB: children(pid).map(rssMB),
    };
    const memAfterDelete = await memoryReports(pid);
    const heapAfterDelete = await heapSnapshots(pid);
    // A minute idle: does V8 give the memory back by itself (its memory reducer runs when the process is idle)?
    if (HEAP_DIR) await new Promise((r) => setTimeout(r, 60_000));
    const memIdle = await memoryReports(pid);
    if (memAtStart && memAfterApply && memAfterDelete && memIdle)
      step.memory = {
        atStart: memAtStart,
        afterApply: memAfterApply,
        afterDeleteAll: memAfterDelete,
        oneMinuteLater: memIdle,
      };
    if (heapAtStart && heapAfterApply && heapAfterDelete) {
      const live = (h: { primary: HeapSummary; workers: HeapSummary[] }) => ({
        primaryMB: mb(h.primary.total),
        workersMB: h.workers.map((x) => mb(x.total)),
      });
      const growth = (a: HeapSummary | undefined, b: HeapSummary | undefined) =>
        a && b ? heapGrowth(a, b, 8).map((g) => ({ name: g.name, kB: round(g.deltaBytes / 1024) })) : [];
      step.liveHeap = {
        atStart: live(heapAtStart),
        afterApply: live(heapAfterApply),
        afterDeleteAll: live(heapAfterDelete),
        primaryGrowthStartToAfterDelete: growth(heapAtStart.primary, heapAfterDelete.primary),
        workerGrowthStartToAfterDelete: growth(heapAtStart.workers[0], heapAfterDelete.workers[0]),
        primaryTopAfterApply: heapAfterApply.primary.byName
          .slice(0, 8)
          .map((x) => ({ name: x.name, kB: round(x.bytes / 1024), count: x.count })),
      };
      log(`live heap: ${JSON.stringify(step.liveHeap)}`);
    }
    log(`delete all: ${JSON.stringify(step.deleteAll)}`);
    results.push(step);
  }
} finally {
  watcher?.stop();
  sampler?.stop();
  await gw?.stop();
  await kube?.stop();
}

const report = {
  date: started.toISOString(),
  machine,
  node: process.version,
  workers: WORKERS,
  services: SERVICES,
  sizes: results,
};
type Step = {
  routes: number;
  kubectlApplyS: number;
  applyToAllProgrammedS: number;
  statusWrites: { ok: number; unchanged: number; notFound: number; error: number };
  writesPerRoute: number;
  tablesPublished: number;
  peakStatusQueue: number;
  peakRoutesAwaitingWorkers: number;
  primaryCpuS: number;
  primaryCpuMsPerRoute: number;
  workersCpuS: number;
  primaryRssPeakMB: number;
  primaryRssAfterMB: number;
  workersRssMB: number[];
  lastHandoff?: { bytes: number; ms: number; maxApplyMs: number };
  singleRouteUpdates: {
    writesMax: number;
    programmedMsMedian: number;
    programmedMsMax: number;
    primaryCpuMsMedian: number;
  };
  deleteAll: {
    toEmptyTableS: number;
    statusWrites: number;
    notFound: number;
    tablesPublished: number;
    primaryCpuS: number;
    primaryRssMB: number;
    workersRssMB: number[];
  };
  memory?: Record<
    'atStart' | 'afterApply' | 'afterDeleteAll' | 'oneMinuteLater',
    { primary: MemoryReport; workers: MemoryReport[] }
  >;
  liveHeap?: {
    atStart: { primaryMB: number; workersMB: number[] };
    afterApply: { primaryMB: number; workersMB: number[] };
    afterDeleteAll: { primaryMB: number; workersMB: number[] };
  };
};
const steps = results as unknown as Step[];
const row = (label: string, f: (s: Step) => string | number) =>
  `| ${label} | ${steps.map((s) => f(s)).join(' | ')} |`;
const md = [
  '# edgegate control plane against a real API server',
  '',
  `Run ${report.date.slice(0, 16).replace('T', ' ')} UTC, ${machine.nproc} × ${machine.cpuModel}, Node ${report.node}, load average at start ${machine.loadAverageAtStart.join(' / ')} (shared machine). ${WORKERS} workers, ${SERVICES} Services with one EndpointSlice each; etcd + kube-apiserver + kubectl + edgegate on the same cores.`,
  '',
  `| | ${steps.map((s) => `${s.routes.toLocaleString('en-US')} routes`).join(' | ')} |`,
  `| --- | ${steps.map(() => '---').join(' | ')} |`,
  row('`kubectl apply` of the batch', (s) => `${s.kubectlApplyS} s`),
  row('apply finished → every route Programmed=True', (s) => `**${s.applyToAllProgrammedS} s**`),
  row(
    'status writes (per route)',
    (s) =>
      `${s.statusWrites.ok} (${s.writesPerRoute}); unchanged ${s.statusWrites.unchanged}, not_found ${s.statusWrites.notFound}, error ${s.statusWrites.error}`,
  ),
  row('tables published during the apply', (s) => s.tablesPublished),
  row(
    'peak status queue / routes awaiting workers',
    (s) => `${s.peakStatusQueue} / ${s.peakRoutesAwaitingWorkers}`,
  ),
  row('primary CPU for the batch (per route)', (s) => `${s.primaryCpuS} s (${s.primaryCpuMsPerRoute} ms)`),
  row('workers CPU for the batch', (s) => `${s.workersCpuS} s`),
  row('primary RSS peak / after', (s) => `${s.primaryRssPeakMB} / ${s.primaryRssAfterMB} MB`),
  row('workers RSS after', (s) => s.workersRssMB.map((x) => `${x} MB`).join(', ')),
  row('last hand-off (bytes, send → all acks, worker apply)', (s) =>
    s.lastHandoff
      ? `${round(s.lastHandoff.bytes / 1024)} KiB, ${s.lastHandoff.ms} ms, ${s.lastHandoff.maxApplyMs} ms`
      : '—',
  ),
  row(`single-route update (${UPDATES}×): most writes`, (s) => s.singleRouteUpdates.writesMax),
  row(
    'single-route update: apply finished → Programmed (median / max)',
    (s) => `${s.singleRouteUpdates.programmedMsMedian} / ${s.singleRouteUpdates.programmedMsMax} ms`,
  ),
  row('single-route update: primary CPU (median)', (s) => `${s.singleRouteUpdates.primaryCpuMsMedian} ms`),
  row(
    'delete all: → empty table',
    (s) =>
      `${s.deleteAll.toEmptyTableS} s, ${s.deleteAll.tablesPublished} tables, ${s.deleteAll.statusWrites} writes, primary CPU ${s.deleteAll.primaryCpuS} s`,
  ),
  row(
    'after delete all: primary / workers RSS',
    (s) => `${s.deleteAll.primaryRssMB} / ${s.deleteAll.workersRssMB.join(', ')} MB`,
  ),
  ...(steps.some((s) => s.memory)
    ? (['primary', 'worker 1'] as const).map((who) =>
        row(
          `${who}: RSS / V8 heap committed / used, at start → after apply → after delete all → 1 min later`,
          (s) => {
            if (!s.memory) return '—';
            const m = s.memory;
            const pick = (x: { primary: MemoryReport; workers: MemoryReport[] }) =>
              who === 'primary' ? x.primary : x.workers[0];
            return [m.atStart, m.afterApply, m.afterDeleteAll, m.oneMinuteLater]
              .map((x) => pick(x))
              .map((r) =>
                r
                  ? `${r.rssMB}/${r.heapCommittedMB}/${r.heapUsedMB} (malloc ${r.brkHeapMB}, lazy-free ${r.lazyFreeMB})`
                  : '—',
              )
              .join(' → ');
          },
        ),
      )
    : []),
  ...(steps.some((s) => s.liveHeap)
    ? [
        row('live heap after GC, start → after apply → after delete all: primary', (s) =>
          s.liveHeap
            ? `${s.liveHeap.atStart.primaryMB} → ${s.liveHeap.afterApply.primaryMB} → ${s.liveHeap.afterDeleteAll.primaryMB} MB`
            : '—',
        ),
        row('live heap after GC: workers', (s) =>
          s.liveHeap
            ? s.liveHeap.atStart.workersMB
                .map(
                  (x, k) =>
                    `${x} → ${s.liveHeap!.afterApply.workersMB[k]} → ${s.liveHeap!.afterDeleteAll.workersMB[k]} MB`,
                )
                .join('; ')
            : '—',
        ),
      ]
    : []),
  '',
].join('\n');
const outDir = values.out ?? join(BENCH_DIR, 'results');
mkdirSync(outDir, { recursive: true });
const stamp = report.date.slice(0, 16).replace(/[:T]/g, '-');
for (const name of ['kube-control-latest', `kube-control-${stamp}`]) {
  writeFileSync(join(outDir, `${name}.json`), `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(join(outDir, `${name}.md`), md);
}
process.stdout.write(md);
process.exit(0);
