/**
 * The Grafana dashboard in the chart (charts/edgegate/dashboards/edgegate.json) queries only metrics that a real
 * edgegate's /metrics exposes, and every query is valid PromQL (promtool parses them as recording rules).
 */

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewayErrors } from '../../../src/lib/errors.ts';
import {
  type EchoUpstream,
  type GatewayProcess,
  ROOT,
  startEcho,
  startGateway,
  writeOneServiceConfig,
} from '../../support/gateway.ts';
import { parsePromText } from '../../support/prom-text.ts';
import { findPromtool, PROMTOOL_HINT } from '../../support/promtool.ts';

const DASHBOARD = join(ROOT, 'charts', 'edgegate', 'dashboards', 'edgegate.json');

interface Panel {
  title?: string;
  type?: string;
  targets?: { expr?: string }[];
  panels?: Panel[];
}

/** Every PromQL expression in the dashboard: panel targets (rows included) and query variables. */
function expressions(dashboard: {
  panels: Panel[];
  templating?: { list: { type: string; query?: unknown }[] };
}): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  const walk = (panels: Panel[]) => {
    for (const p of panels) {
      for (const t of p.targets ?? []) if (t.expr) out.push({ where: `panel "${p.title}"`, expr: t.expr });
      if (p.panels) walk(p.panels);
    }
  };
  walk(dashboard.panels);
  for (const v of dashboard.templating?.list ?? []) {
    if (v.type !== 'query') continue;
    const q = typeof v.query === 'string' ? v.query : (v.query as { query?: string })?.query;
    const m = q ? /^label_values\((.*),\s*\w+\)$/.exec(q) : null;
    if (m) out.push({ where: `variable query ${q}`, expr: m[1]! });
  }
  return out;
}

/** Grafana's variables and intervals replaced by values Prometheus accepts. */
function concrete(expr: string): string {
  return expr.replaceAll('$__rate_interval', '5m').replaceAll('$__interval', '1m').replace(/\$\w+/g, '.*');
}

let echo: EchoUpstream;
let gw: GatewayProcess;
let dir: string;

beforeAll(async () => {
  echo = await startEcho('dash');
  dir = mkdtempSync(join(tmpdir(), 'edgegate-dashboard-'));
  const config = writeOneServiceConfig(dir, echo.port, 'dash');
  gw = await startGateway(['--routes', config.routes, '--catalog', config.catalog, '--workers', '2']);
  for (let i = 0; i < 3; i++) await (await fetch(`${gw.url}/x`)).arrayBuffer();
});

afterAll(async () => {
  await gw?.stop();
  await echo?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('Grafana dashboard', () => {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8'));
  const exprs = expressions(dashboard);

  it('has the panels operators need', () => {
    expect(exprs.length).toBeGreaterThan(30);
    const titles = JSON.stringify(dashboard.panels.map((p: Panel) => p.title));
    for (const t of ['Traffic', 'Errors', 'Latency', 'Pools and upstreams', 'Control plane freshness'])
      expect(titles).toContain(t);
  });

  it('counts every 5xx the gateway writes in the error ratio, and nothing below 500', () => {
    const ratio = exprs.find((e) => e.where.includes('Error ratio'))!;
    const re = /code=~"([^"]+)"/.exec(ratio.expr)![1]!;
    const matches = (code: string) => new RegExp(`^(?:${re})$`).test(code);
    expect(matches('5xx')).toBe(true);
    expect(matches('4xx')).toBe(false);
    for (const [code, { status }] of Object.entries(GatewayErrors))
      expect(matches(code), code).toBe(status >= 500);
  });

  it('references only metrics that /metrics exposes', async () => {
    const text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    const prom = parsePromText(text);
    const exposed = new Set<string>([...prom.type.keys(), ...prom.samples.map((s) => s.name)]);
    const missing: string[] = [];
    let referenced = 0;
    for (const { where, expr } of exprs) {
      for (const [name] of expr.matchAll(/\bedgegate_[a-zA-Z0-9_:]*/g)) {
        referenced++;
        if (!exposed.has(name)) missing.push(`${where}: ${name}`);
      }
    }
    expect(missing).toEqual([]);
    expect(referenced).toBeGreaterThan(exprs.length);
  });

  it('has only valid PromQL (promtool check rules)', () => {
    const promtool = findPromtool();
    if (!promtool) throw new Error(PROMTOOL_HINT);
    const rules = {
      groups: [
        {
          name: 'dashboard',
          rules: exprs.map((e, i) => ({ record: `dashboard:expr_${i}`, expr: concrete(e.expr) })),
        },
      ],
    };
    const file = join(dir, 'rules.yaml');
    writeFileSync(file, JSON.stringify(rules));
    const r = spawnSync(promtool, ['check', 'rules', file], { encoding: 'utf8', timeout: 30_000 });
    expect(`${r.stdout}${r.stderr}`).toContain('SUCCESS');
    expect(r.status).toBe(0);
  });
});
