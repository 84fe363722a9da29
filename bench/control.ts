/**
 * `npm run bench:control`: the control-plane benchmarks in one report — compile time and memory (10,000 routes
 * over 50,000 endpoints in 20 datacenters), route match ns/op (10,000 routes, mixed exact / prefix / regex / host
 * routes), table hand-off to workers (bench/table-handoff.ts, from the process-model work) and, once the Consul
 * source and its test harness are on main, Consul change → served table. Each runs in its own process so
 * memory numbers are its own. Writes bench/results/control-latest.{md,json} and a dated copy.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BENCH_DIR, log, REPO_DIR } from './lib/system.ts';

const { values } = parseArgs({ options: { out: { type: 'string' } } });
const outDir = values.out ?? join(BENCH_DIR, 'results');

function run(args: string[], timeoutMs = 300_000): string {
  log(`node ${args.join(' ')}`);
  const r = spawnSync(process.execPath, args, { cwd: REPO_DIR, encoding: 'utf8', timeout: timeoutMs });
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} failed (${r.status}):\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

const lastJsonLine = (text: string) =>
  JSON.parse(
    text
      .trim()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .pop()!,
  );

const started = new Date();
const compileOut = lastJsonLine(run(['--expose-gc', 'bench/compile.bench.ts', '--json']));
const matchOut = lastJsonLine(run(['bench/match.bench.ts', '10000']));

let handoff: { text: string; medianMs?: number; applyMs?: number; payloadMiB?: number } | string;
if (existsSync(join(BENCH_DIR, 'table-handoff.ts'))) {
  const text = run(['bench/table-handoff.ts', '10000', '2', '7'], 600_000);
  const real =
    /send → all acks median ([\d.]+) ms.*parse\+build\+swap median ([\d.]+) ms; payload ([\d.]+) MiB/.exec(
      text,
    );
  handoff = {
    text: text.trim(),
    ...(real ? { medianMs: Number(real[1]), applyMs: Number(real[2]), payloadMiB: Number(real[3]) } : {}),
  };
} else handoff = 'not measured: bench/table-handoff.ts (process model) is not in this build';

let consul: unknown;
if (existsSync(join(BENCH_DIR, 'consul-change.bench.ts'))) {
  consul = lastJsonLine(run(['bench/consul-change.bench.ts'], 600_000));
} else
  consul =
    'not measured: needs the Consul source (branch consul) and the real-Consul harness (test/support/consul.ts) on main';

const result = {
  date: started.toISOString(),
  machine: {
    nproc: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    loadAverageAtStart: loadavg().map((l) => Math.round(l * 100) / 100),
  },
  node: process.version,
  compile: compileOut,
  match: matchOut,
  handoff,
  consul,
  targets: {
    'route match < 1 µs median (10,000 routes)': `${matchOut.matchNsMedian} ns — ${matchOut.matchNsMedian < 1000 ? 'met' : 'missed'}`,
    'compile 10,000 routes / 50,000 endpoints < 1 s': `${compileOut.compileMsMedian} ms median — ${compileOut.compileMsMedian < 1000 ? 'met' : 'missed'}`,
    ...(typeof consul === 'string'
      ? {}
      : {
          'Consul change → served table p99 < 500 ms': `${(consul as ConsulOut).all.p99Ms} ms — ${(consul as ConsulOut).all.p99Ms < 500 ? 'met' : 'missed'}`,
        }),
    'compile < 300 MB': `peak RSS of the process after one compile ${compileOut.peakRssFirstCompileMB} MB, after ${compileOut.runs ?? 6} compiles ${compileOut.peakRssMB} MB (heap retained: inputs ${compileOut.heapInputsMB} MB + table ${compileOut.heapTableMB} MB) — ${compileOut.peakRssFirstCompileMB < 300 ? 'met' : 'missed (RSS)'}`,
  },
};

interface ConsulOut {
  changes: number;
  all: { p50Ms: number; p99Ms: number; maxMs: number };
}
const consulText = (c: ConsulOut) =>
  `${c.changes} changes: p50 ${c.all.p50Ms} ms, p99 ${c.all.p99Ms} ms, max ${c.all.maxMs} ms`;
const h = typeof handoff === 'string' ? handoff : handoff;
const md = [
  '# edgegate control-plane benchmarks',
  '',
  `Run ${result.date.slice(0, 16).replace('T', ' ')} UTC, ${result.machine.nproc} × ${result.machine.cpuModel}, Node ${result.node}, load average at start ${result.machine.loadAverageAtStart.join(' / ')} (shared machine).`,
  '',
  '| measurement | value |',
  '| --- | --- |',
  `| compile: ${compileOut.routes.toLocaleString('en-US')} routes, ${compileOut.endpoints.toLocaleString('en-US')} endpoints, ${compileOut.datacenters} DCs → ${compileOut.entries.toLocaleString('en-US')} entries, ${compileOut.clusters.toLocaleString('en-US')} clusters | ${compileOut.compileMsMedian} ms median (min ${compileOut.compileMsMin} ms); worker index build ${compileOut.indexBuildMs} ms |`,
  `| compile memory | heap retained: inputs ${compileOut.heapInputsMB} MB, table ${compileOut.heapTableMB} MB (JSON ${compileOut.tableJsonMB} MB); process peak RSS ${compileOut.peakRssFirstCompileMB} MB after one compile, ${compileOut.peakRssMB} MB after all runs |`,
  `| route match, ${matchOut.routes.toLocaleString('en-US')} routes (exact/prefix/regex/host mix) | ${matchOut.matchNsMedian} ns/op median wall-clock (min ${matchOut.matchNsMin}), ${matchOut.matchCpuNsMedian} ns/op CPU |`,
  `| table hand-off to 2 workers (10,000 routes) | ${typeof h === 'string' ? h : h.medianMs !== undefined ? `${h.medianMs} ms send → all acks (worker parse+build+swap ${h.applyMs} ms, ${h.payloadMiB} MiB)` : 'see JSON'} |`,
  `| Consul change → served table (real Consul dc1 + dc2, default coalescing) | ${typeof consul === 'string' ? consul : consulText(consul as ConsulOut)} |`,
  '',
  ...Object.entries(result.targets).map(([k, v]) => `- ${k}: ${v}`),
  '',
].join('\n');

mkdirSync(outDir, { recursive: true });
const stamp = result.date.slice(0, 16).replace(/[:T]/g, '-');
for (const name of ['control-latest', `control-${stamp}`]) {
  writeFileSync(join(outDir, `${name}.json`), `${JSON.stringify(result, null, 2)}\n`);
  writeFileSync(join(outDir, `${name}.md`), md);
}
process.stdout.write(md);
