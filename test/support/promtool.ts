/**
 * Prometheus' own checker: `promtool check metrics` reads an exposition on stdin and reports format errors and
 * lint problems (missing HELP, counters without _total, bad units…). Found via EDGEGATE_PROMTOOL, then PATH
 * (Debian: `apt-get install -y --no-install-recommends prometheus`), then ~/.cache/edgegate/bin/promtool
 * (`GOBIN=~/.cache/edgegate/bin go install github.com/prometheus/prometheus/cmd/promtool@<version>`).
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';

export function findPromtool(): string | undefined {
  const candidates = [
    process.env.EDGEGATE_PROMTOOL,
    ...(process.env.PATH ?? '').split(delimiter).map((d) => join(d, 'promtool')),
    join(process.env.EDGEGATE_CACHE_DIR || join(homedir(), '.cache', 'edgegate'), 'bin', 'promtool'),
  ];
  for (const c of candidates) {
    if (!c) continue;
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {}
  }
  return undefined;
}

export const PROMTOOL_HINT =
  'promtool not found: apt-get install -y --no-install-recommends prometheus, or set EDGEGATE_PROMTOOL';

/** Runs `promtool check metrics`; returns its exit status and combined output. */
export function promtoolCheckMetrics(exposition: string): { status: number | null; output: string } {
  const bin = findPromtool();
  if (!bin) throw new Error(PROMTOOL_HINT);
  const r = spawnSync(bin, ['check', 'metrics'], { input: exposition, encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, output: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}
