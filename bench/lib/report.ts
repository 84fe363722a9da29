/**
 * Results of one load-benchmark run: the JSON shape (raw per-round numbers plus the summary) and the Markdown
 * table the README quotes.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface LatencyPoint {
  fraction: number;
  rate: number;
  achievedRate: number;
  p50Us: number;
  p99Us: number;
  errors: number;
}

export interface TargetResult {
  name: string;
  label: string;
  /** req/s of each round. */
  rps: { small: number[]; large: number[] };
  cpuUsPerRequest: { small: number[]; large: number[] };
  errors: number;
  latency: LatencyPoint[];
  summary?: TargetSummary;
}

export interface TargetSummary {
  rpsSmall: number;
  rpsLarge: number;
  ratioToNginxSmall: number | null;
  ratioToNginxLarge: number | null;
  cpuUsPerRequestSmall: number;
  cpuUsPerRequestLarge: number;
  /** Added over the direct path, µs, per fixed rate (same order as fixedRates). */
  addedP50Us: (number | null)[];
  addedP99Us: (number | null)[];
}

export interface BenchResult {
  date: string;
  durationS: number;
  machine: {
    nproc: number;
    cpuModel: string;
    kernel: string;
    loadAverageAtStart: number[];
    loadAverageAtEnd?: number[];
    shared: string;
  };
  versions: Record<string, string>;
  settings: Record<string, unknown> & {
    mode: string;
    rounds: number;
    durationS: number;
    connections: number;
  };
  fixedRates: number[];
  targets: TargetResult[];
  targetsCheck?: Record<string, string>;
}

function median(list: number[]): number {
  const s = list.filter((n) => Number.isFinite(n)).sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const round1 = (n: number) => Math.round(n * 10) / 10;

export function summarize(result: BenchResult): void {
  const nginx = result.targets.find((t) => t.name === 'nginx');
  const direct = result.targets.find((t) => t.name === 'direct');
  const nginxSmall = nginx ? median(nginx.rps.small) : undefined;
  const nginxLarge = nginx ? median(nginx.rps.large) : undefined;
  for (const t of result.targets) {
    const rpsSmall = median(t.rps.small);
    const rpsLarge = median(t.rps.large);
    t.summary = {
      rpsSmall: Math.round(rpsSmall),
      rpsLarge: Math.round(rpsLarge),
      ratioToNginxSmall: nginxSmall ? Math.round((rpsSmall / nginxSmall) * 100) / 100 : null,
      ratioToNginxLarge: nginxLarge ? Math.round((rpsLarge / nginxLarge) * 100) / 100 : null,
      cpuUsPerRequestSmall: round1(median(t.cpuUsPerRequest.small)),
      cpuUsPerRequestLarge: round1(median(t.cpuUsPerRequest.large)),
      addedP50Us: t.latency.map((l, i) => {
        const d = direct?.latency[i];
        return d ? Math.round(l.p50Us - d.p50Us) : null;
      }),
      addedP99Us: t.latency.map((l, i) => {
        const d = direct?.latency[i];
        return d ? Math.round(l.p99Us - d.p99Us) : null;
      }),
    };
  }
  // The issue's targets, checked against baselines measured in this run.
  const edge =
    result.targets.find((t) => t.name === 'edgegate-1w') ?? result.targets.find((t) => t.name === 'edgegate');
  const nodeBest = Math.max(
    ...result.targets
      .filter((t) => t.name === 'http-proxy' || t.name === 'fastify-http-proxy')
      .map((t) => t.summary!.rpsSmall),
  );
  const check: Record<string, string> = {};
  const verdict = (ok: boolean) => (ok ? 'met' : 'missed');
  // Issue 17's targets: one worker against nginx (1 worker) and the Node proxies, its CPU, its latency, two workers.
  if (edge?.summary && nginx?.summary) {
    const small = edge.summary.rpsSmall / nginx.summary.rpsSmall;
    const large = edge.summary.rpsLarge / nginx.summary.rpsLarge;
    check['edgegate (1 worker) ≥ 0.6× nginx req/s, small and 16 KiB'] =
      `${small.toFixed(2)}× / ${large.toFixed(2)}× — ${verdict(small >= 0.6 && large >= 0.6)}`;
    const cpu = edge.summary.cpuUsPerRequestSmall / nginx.summary.cpuUsPerRequestSmall;
    check['edgegate CPU per request ≤ 2× nginx’s'] = `${cpu.toFixed(2)}× — ${verdict(cpu <= 2)}`;
    const i50 = Math.max(0, ((result.settings.fractions as number[] | undefined) ?? []).indexOf(0.5));
    const e99 = edge.summary.addedP99Us[i50];
    const n99 = nginx.summary.addedP99Us[i50];
    if (e99 != null && n99 != null)
      check['edgegate added p99 at 50% ≤ 2× nginx added p99'] =
        `${e99} µs vs ${n99} µs — ${verdict(e99 <= 2 * Math.max(n99, 1))}`;
  }
  if (edge?.summary && Number.isFinite(nodeBest) && nodeBest > 0) {
    const r = edge.summary.rpsSmall / nodeBest;
    check['edgegate ≥ 3× best Node proxy req/s'] = `${r.toFixed(2)}× — ${verdict(r >= 3)}`;
  }
  const two = result.targets.find((t) => t.name === 'edgegate-2w');
  if (edge?.summary && two?.summary && edge !== two) {
    const r = two.summary.rpsSmall / edge.summary.rpsSmall;
    check['edgegate 2 workers ≥ 1.7× 1 worker req/s'] = `${r.toFixed(2)}× — ${verdict(r >= 1.7)}`;
  }
  result.targetsCheck = check;
}

const fmt = (n: number | null | undefined, unit = '') =>
  n === null || n === undefined || !Number.isFinite(n) ? '—' : `${n.toLocaleString('en-US')}${unit}`;

export function renderMarkdown(result: BenchResult): string {
  if (!result.targets[0]?.summary) summarize(result);
  const rates = result.fixedRates;
  const lines: string[] = [];
  lines.push(
    `Run ${result.date.slice(0, 16).replace('T', ' ')} UTC, ${result.settings.mode} mode (${result.settings.rounds} round(s) × ${result.settings.durationS} s, ${result.settings.connections} connections), ` +
      `${result.machine.nproc} × ${result.machine.cpuModel}, ${result.machine.kernel}, Node ${result.versions.node}, ` +
      `load average at start ${result.machine.loadAverageAtStart.join(' / ')} (shared machine).`,
  );
  lines.push('');
  lines.push(
    `| target | req/s small | × nginx | req/s 16 KiB | × nginx | CPU µs/req small | ${rates
      .map(
        (r, i) =>
          `+p50 / +p99 µs @ ${Math.round(((result.settings.fractions as number[])?.[i] ?? 0) * 100)}% (${r}/s)`,
      )
      .join(' | ')} |`,
  );
  lines.push(`|${' --- |'.repeat(6 + rates.length)}`);
  for (const t of result.targets) {
    const s = t.summary!;
    const lat = rates.map((_, i) =>
      t.name === 'direct'
        ? `${fmt(t.latency[i]?.p50Us)} / ${fmt(t.latency[i]?.p99Us)} (abs.)`
        : `${fmt(s.addedP50Us[i])} / ${fmt(s.addedP99Us[i])}${t.latency[i]?.errors ? ` (${t.latency[i]!.errors} err)` : ''}`,
    );
    lines.push(
      `| ${t.label} | ${fmt(s.rpsSmall)} | ${fmt(s.ratioToNginxSmall)} | ${fmt(s.rpsLarge)} | ${fmt(s.ratioToNginxLarge)} | ${
        t.name === 'direct' ? `${fmt(s.cpuUsPerRequestSmall)} (upstream)` : fmt(s.cpuUsPerRequestSmall)
      } | ${lat.join(' | ')} |`,
    );
  }
  lines.push('');
  lines.push(
    'req/s: median of rounds (wrk, 1 thread). +p50/+p99: latency added over the direct path at a fixed rate ' +
      '(paced generator, coordinated-omission corrected). CPU µs/req: utime+stime of the proxy process tree over ' +
      `the measured run divided by its requests. Pinning: ${String(result.settings.pinning)}.`,
  );
  if (result.targetsCheck && Object.keys(result.targetsCheck).length > 0) {
    lines.push('');
    for (const [k, v] of Object.entries(result.targetsCheck)) lines.push(`- ${k}: ${v}`);
  }
  const errs = result.targets.filter((t) => t.errors > 0);
  if (errs.length) {
    lines.push('');
    lines.push(`Errors during throughput runs: ${errs.map((t) => `${t.name} ${t.errors}`).join(', ')}.`);
  }
  return lines.join('\n');
}

/** latest.{md,json} (full runs) or <mode>-latest.* plus a dated copy; returns the paths written. */
export function writeResults(dir: string, result: BenchResult, partial: boolean): string[] {
  summarize(result);
  mkdirSync(dir, { recursive: true });
  const md = `# edgegate load benchmark\n\n${renderMarkdown(result)}\n`;
  const json = `${JSON.stringify(result, null, 2)}\n`;
  const base = partial ? `${result.settings.mode}-latest` : 'latest';
  const stamp = result.date.slice(0, 16).replace(/[:T]/g, '-');
  const dated = partial ? `${result.settings.mode}-${stamp}` : stamp;
  const out: string[] = [];
  for (const name of [base, dated]) {
    for (const [ext, text] of [
      ['md', md],
      ['json', json],
    ] as const) {
      const p = join(dir, `${name}.${ext}`);
      writeFileSync(p, text);
      out.push(p);
    }
  }
  return out;
}
