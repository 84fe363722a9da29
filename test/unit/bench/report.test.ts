/**
 * The load-benchmark report (bench/lib/report.ts): medians, ratios to nginx, latency added over the direct path,
 * the targets, and the files written. Synthetic numbers: this checks the arithmetic and the format, not
 * performance (the benchmark itself never runs in tests).
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type BenchResult,
  renderMarkdown,
  type TargetResult,
  writeResults,
} from '../../../bench/lib/report.ts';

function target(name: string, small: number[], p50: number[], p99: number[]): TargetResult {
  return {
    name,
    label: `${name} label`,
    rps: { small, large: small.map((n) => n / 2) },
    cpuUsPerRequest: { small: [10, 20, 30], large: [40, 50, 60] },
    errors: 0,
    latency: p50.map((v, i) => ({
      fraction: [0.25, 0.5, 0.75][i]!,
      rate: [1000, 2000, 3000][i]!,
      achievedRate: [1000, 2000, 3000][i]!,
      p50Us: v,
      p99Us: p99[i]!,
      errors: 0,
    })),
  };
}

function result(): BenchResult {
  return {
    date: '2026-01-02T03:04:05.000Z',
    durationS: 1,
    machine: { nproc: 2, cpuModel: 'Test CPU', kernel: 'Linux', loadAverageAtStart: [1, 1, 1], shared: '' },
    versions: { node: 'v24.0.0' },
    settings: { mode: 'full', rounds: 3, durationS: 10, connections: 50, fractions: [0.25, 0.5, 0.75] },
    fixedRates: [1000, 2000, 3000],
    targets: [
      target('direct', [40_000, 50_000, 45_000], [100, 100, 100], [500, 500, 500]),
      target('nginx', [20_000, 10_000, 30_000], [200, 250, 300], [900, 1000, 1100]),
      target('http-proxy', [4000, 5000, 3000], [400, 500, 600], [5000, 6000, 7000]),
      target('edgegate-1w', [12_000, 11_000, 13_000], [300, 400, 500], [1500, 2600, 3000]),
      target('edgegate-2w', [20_000, 21_000, 19_000], [300, 400, 500], [1500, 2600, 3000]),
    ],
  };
}

describe('load benchmark report', () => {
  it('takes medians of rounds and ratios to nginx', () => {
    const r = result();
    renderMarkdown(r);
    const edge = r.targets.find((t) => t.name === 'edgegate-1w')!.summary!;
    expect(edge.rpsSmall).toBe(12_000);
    expect(edge.ratioToNginxSmall).toBe(0.6);
    expect(edge.cpuUsPerRequestSmall).toBe(20);
    expect(edge.addedP50Us).toEqual([200, 300, 400]);
    expect(edge.addedP99Us).toEqual([1000, 2100, 2500]);
    // Issue 17's targets, each against this run's baselines.
    expect(r.targetsCheck!['edgegate (1 worker) ≥ 0.6× nginx req/s, small and 16 KiB']).toBe(
      '0.60× / 0.60× — met',
    );
    expect(r.targetsCheck!['edgegate CPU per request ≤ 2× nginx’s']).toBe('1.00× — met');
    expect(r.targetsCheck!['edgegate ≥ 3× best Node proxy req/s']).toMatch(/3\.00× — met/);
    // 20,000 against 12,000: 1.67×, under 1.7×.
    expect(r.targetsCheck!['edgegate 2 workers ≥ 1.7× 1 worker req/s']).toBe('1.67× — missed');
    // nginx adds 500 µs p99 at 50%; edgegate 2,100 µs: more than twice.
    expect(r.targetsCheck!['edgegate added p99 at 50% ≤ 2× nginx added p99']).toMatch(/missed/);
  });

  it('renders one table row per target with the fixed rates in the header', () => {
    const md = renderMarkdown(result());
    const rows = md.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| ---'));
    expect(rows).toHaveLength(1 + 5);
    expect(rows[0]).toContain('@ 50% (2000/s)');
    expect(rows.find((l) => l.startsWith('| edgegate-1w'))).toContain('| 12,000 | 0.6 |');
  });

  it('writes latest and dated Markdown + JSON for a full run', () => {
    const dir = mkdtempSync(join(tmpdir(), 'edgegate-bench-report-'));
    const files = writeResults(dir, result(), false);
    expect(files.map((f) => f.slice(dir.length + 1)).sort()).toEqual([
      '2026-01-02-03-04.json',
      '2026-01-02-03-04.md',
      'latest.json',
      'latest.md',
    ]);
    const json = JSON.parse(readFileSync(join(dir, 'latest.json'), 'utf8')) as BenchResult;
    expect(json.targets.map((t) => t.summary?.rpsSmall)).toEqual([45_000, 20_000, 4000, 12_000, 20_000]);
    expect(readFileSync(join(dir, 'latest.md'), 'utf8')).toMatch(/^# edgegate load benchmark/);
  });
});
