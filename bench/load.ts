/**
 * `npm run bench`: edgegate side by side with nginx, HAProxy and the Node proxies, in one run, against one nginx
 * upstream. Throughput with wrk at a fixed connection count (median of rounds, targets in alternating order),
 * then latency at fixed rates (25 / 50 / 75% of nginx's throughput) with the paced generator (bench/pace),
 * CPU time per request from /proc. Writes bench/results/latest.{md,json} and dated copies.
 *
 *   node bench/load.ts            full run (3 rounds, 10 s per measurement; ~15 min)
 *   node bench/load.ts --quick    1 round, 4 s per measurement (~3 min)
 *   node bench/load.ts --smoke    direct + edgegate only, 1 s runs: checks the harness end to end
 * Options: --rounds N --duration S --warmup S --connections N --targets a,b --out DIR
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type BenchResult, renderMarkdown, type TargetResult, writeResults } from './lib/report.ts';
import {
  BENCH_DIR,
  cpuSeconds,
  ensureBenchDependencies,
  ensureDebianPackages,
  ensurePace,
  log,
  type Proc,
  sbin,
  versionOf,
  writeFile,
} from './lib/system.ts';
import {
  BENCH_HOST,
  BENCH_PATH,
  detectEdgegateFeatures,
  LOADGEN_CPU,
  PROXY_CPU,
  startEdgegate,
  startHaproxy,
  startNginxProxy,
  startNodeBaseline,
  startUpstream,
  type Target,
  UPSTREAM_CPU,
} from './lib/targets.ts';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    smoke: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    'latency-duration': { type: 'string' },
    connections: { type: 'string', default: '50' },
    targets: { type: 'string' },
    out: { type: 'string' },
  },
});
const mode = values.smoke ? 'smoke' : values.quick ? 'quick' : 'full';
const preset = {
  full: { rounds: 3, duration: 10, warmup: 3, latency: 10 },
  quick: { rounds: 1, duration: 4, warmup: 1, latency: 4 },
  smoke: { rounds: 1, duration: 1, warmup: 0.5, latency: 1 },
}[mode];
const settings = {
  mode,
  rounds: Number(values.rounds ?? preset.rounds),
  durationS: Number(values.duration ?? preset.duration),
  warmupS: Number(values.warmup ?? preset.warmup),
  latencyDurationS: Number(values['latency-duration'] ?? preset.latency),
  connections: Number(values.connections),
  fractions: [0.25, 0.5, 0.75],
};
const outDir = values.out ?? join(BENCH_DIR, 'results');
const node = process.execPath;

if (Number(process.versions.node.split('.')[0]) < 26)
  throw new Error(`Node 26 is needed (this is ${process.version}); run it with npm run bench`);

type Body = 'small' | 'large';
const BODIES: Body[] = ['small', 'large'];

function median(list: number[]): number {
  const s = [...list].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function wrk(port: number, body: Body, seconds: number): { rps: number; requests: number; errors: number } {
  const args = [
    '-c',
    LOADGEN_CPU,
    'wrk',
    '-t1',
    `-c${settings.connections}`,
    `-d${Math.max(1, Math.round(seconds))}s`,
    '-H',
    `Host: ${BENCH_HOST}`,
    `http://127.0.0.1:${port}${BENCH_PATH[body]}`,
  ];
  const out = execFileSync('taskset', args, { encoding: 'utf8' });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? Number.NaN);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = non2xx + (sock ? sock.slice(1).reduce((n, v) => n + Number(v), 0) : 0);
  return { rps, requests, errors };
}

interface PaceOut {
  achievedRate: number;
  requests: number;
  errors: number;
  non2xx: number;
  unsent: number;
  latencyUs: { p50: number; p90: number; p99: number; p999: number; max: number };
}

function pace(bin: string, port: number, rate: number, seconds: number): PaceOut {
  const r = spawnSync(
    'taskset',
    [
      '-c',
      LOADGEN_CPU,
      bin,
      '-url',
      `http://127.0.0.1:${port}${BENCH_PATH.small}`,
      '-host',
      BENCH_HOST,
      '-rate',
      String(Math.round(rate)),
      '-duration',
      `${seconds}s`,
      '-warmup',
      `${Math.min(2, Math.max(0.5, seconds / 5))}s`,
      '-connections',
      String(settings.connections),
    ],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`pace failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as PaceOut;
}

const running: { stop(): Promise<void> }[] = [];
async function stopAll() {
  for (const p of running.splice(0).reverse()) await p.stop().catch(() => {});
}
for (const sig of ['SIGINT', 'SIGTERM'] as const)
  process.once(sig, () => {
    stopAll().finally(() => process.exit(130));
  });

async function main(): Promise<void> {
  ensureDebianPackages({ nginx: 'nginx', haproxy: 'haproxy', wrk: 'wrk' });
  ensureBenchDependencies();
  const paceBin = ensurePace();
  const started = new Date();
  const work = join(BENCH_DIR, '.work', started.toISOString().replace(/[:.]/g, '-'));
  writeFile(join(work, 'README'), 'scratch space of one `npm run bench` run\n');

  const features = detectEdgegateFeatures(node);
  log(
    `edgegate build: --workers ${features.workers ? 'available' : 'not available'}; ${features.observeNote}`,
  );

  const upstream = await startUpstream(work);
  running.push(upstream.proc);
  const upstreamProc: Proc = upstream.proc;

  type Starter = { name: string; start: () => Promise<Target> };
  const starters: Starter[] = [
    {
      name: 'direct',
      start: async () => ({
        name: 'direct',
        label: 'direct to the upstream (the limit)',
        port: upstream.port,
        pid: undefined,
        stop: async () => {},
      }),
    },
    { name: 'nginx', start: () => startNginxProxy(work, upstream.port) },
    { name: 'haproxy', start: () => startHaproxy(work, upstream.port) },
    { name: 'fastify-http-proxy', start: () => startNodeBaseline('fastify-http-proxy', node, upstream.port) },
    { name: 'http-proxy', start: () => startNodeBaseline('http-proxy', node, upstream.port) },
  ];
  if (features.workers) {
    starters.push({
      name: 'edgegate-1w',
      start: () => startEdgegate(work, node, upstream.port, 1, features),
    });
    // One worker with one data-path flag changed: the A/B of each switch in the same run (builds that have it).
    const variants = [
      {
        on: features.upstreamClient,
        name: 'undici',
        args: ['--upstream-client', 'undici'],
        label: 'undici upstream client (the old path)',
      },
      {
        on: features.http1Server,
        name: 'nodehttp',
        args: ['--http1-server', 'node'],
        label: 'node:http server (the old client side)',
      },
    ];
    for (const v of variants)
      if (v.on)
        starters.push({
          name: `edgegate-1w-${v.name}`,
          start: () =>
            startEdgegate(work, node, upstream.port, 1, features, {
              args: v.args,
              suffix: `-${v.name}`,
              label: v.label,
            }),
        });
    starters.push({
      name: 'edgegate-2w',
      start: () => startEdgegate(work, node, upstream.port, 2, features),
    });
  } else {
    starters.push({
      name: 'edgegate',
      start: () => startEdgegate(work, node, upstream.port, undefined, features),
    });
  }
  const wanted =
    values.targets?.split(',') ??
    (mode === 'smoke' ? ['direct', 'nginx', 'edgegate', 'edgegate-1w'] : undefined);
  const targets: Target[] = [];
  for (const s of starters) {
    if (wanted && !wanted.includes(s.name)) continue;
    log(`starting ${s.name}`);
    const t = await s.start();
    running.push(t);
    targets.push(t);
  }

  const results = new Map<string, TargetResult>(
    targets.map((t) => [
      t.name,
      {
        name: t.name,
        label: t.label,
        rps: { small: [], large: [] },
        cpuUsPerRequest: { small: [], large: [] },
        errors: 0,
        latency: [],
      },
    ]),
  );

  // Throughput: every target, both bodies, alternating order between rounds so drift hits everyone alike.
  for (let round = 0; round < settings.rounds; round++) {
    const order = round % 2 === 0 ? targets : [...targets].reverse();
    for (const t of order) {
      for (const body of BODIES) {
        if (settings.warmupS > 0) wrk(t.port, body, settings.warmupS);
        const pid = t.pid;
        const cpu0 = pid ? cpuSeconds(pid) : cpuSeconds(upstreamProc.child.pid!);
        const w = wrk(t.port, body, settings.durationS);
        const cpu1 = pid ? cpuSeconds(pid) : cpuSeconds(upstreamProc.child.pid!);
        const r = results.get(t.name)!;
        r.rps[body].push(w.rps);
        r.cpuUsPerRequest[body].push(w.requests > 0 ? ((cpu1 - cpu0) * 1e6) / w.requests : Number.NaN);
        r.errors += w.errors;
        log(
          `round ${round + 1}/${settings.rounds} ${t.name} ${body}: ${Math.round(w.rps)} req/s${w.errors ? `, ${w.errors} errors` : ''}`,
        );
      }
    }
  }

  const nginxRps = results.get('nginx') ? median(results.get('nginx')!.rps.small) : undefined;
  const baseRps = nginxRps ?? median(results.get('direct')!.rps.small) / 2;
  const rates = settings.fractions.map((f) => Math.max(50, Math.round(f * baseRps)));

  // Latency at fixed rates (small body), alternating order per rate.
  for (const [i, rate] of rates.entries()) {
    const order = i % 2 === 0 ? targets : [...targets].reverse();
    for (const t of order) {
      const p = pace(paceBin, t.port, rate, settings.latencyDurationS);
      const r = results.get(t.name)!;
      r.latency.push({
        fraction: settings.fractions[i]!,
        rate,
        achievedRate: Math.round(p.achievedRate),
        p50Us: p.latencyUs.p50,
        p99Us: p.latencyUs.p99,
        errors: p.errors + p.non2xx + p.unsent,
      });
      log(`${t.name} @ ${rate} req/s: p50 ${p.latencyUs.p50} µs, p99 ${p.latencyUs.p99} µs`);
    }
  }

  const cpuInfo = cpus();
  const result: BenchResult = {
    date: started.toISOString(),
    durationS: Math.round((Date.now() - started.getTime()) / 1000),
    machine: {
      nproc: cpuInfo.length,
      cpuModel: cpuInfo[0]?.model ?? 'unknown',
      kernel: versionOf('uname', ['-sr']),
      loadAverageAtStart: loadavg().map((l) => Math.round(l * 100) / 100),
      shared: 'the machine was shared with other workloads; numbers are noisy',
    },
    versions: {
      node: process.version,
      nginx: versionOf(sbin('nginx'), ['-v']).replace(/^nginx version: /, ''),
      haproxy: versionOf(sbin('haproxy'), ['-v']),
      wrk: versionOf('wrk', ['-v']),
    },
    settings: {
      ...settings,
      pinning: `upstream nginx on CPU ${UPSTREAM_CPU}, load generators on CPU ${LOADGEN_CPU}, each single-process proxy on CPU ${PROXY_CPU}; a multi-worker edgegate on CPUs 0,1`,
      request: `GET ${BENCH_PATH.small} (and ${BENCH_PATH.large}) Host: ${BENCH_HOST}`,
      edgegate: {
        routes: 1000,
        workersFlag: features.workers,
        observe: features.observeNote,
      },
    },
    fixedRates: rates,
    targets: [...results.values()],
  };
  result.machine.loadAverageAtEnd = loadavg().map((l) => Math.round(l * 100) / 100);
  const files = writeResults(outDir, result, mode !== 'full');
  process.stdout.write(`${renderMarkdown(result)}\n`);
  log(`wrote ${files.join(', ')}`);
}

try {
  await main();
} finally {
  await stopAll();
}
