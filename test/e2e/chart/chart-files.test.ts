/**
 * The chart's files agree with their one source: the CRD with the generated top-level crds/, the RBAC rules with
 * src/control/sources/kube/rbac.ts, appVersion with package.json; values.yaml documents every value and the schema closes
 * every object. No servers: plain file checks.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { rbacRulesJson } from '../../../src/control/sources/kube/rbac.ts';
import { REPO_ROOT } from '../../support/bins.ts';
import { CHART_DIR } from './chart-support.ts';

const read = (path: string) => readFileSync(path, 'utf8');

describe('chart files', () => {
  it('ships exactly the top-level CRDs, byte for byte (npm run gen:chart-crds copies them)', () => {
    const top = readdirSync(join(REPO_ROOT, 'crds')).filter((f) => f.endsWith('.yaml'));
    const chart = readdirSync(join(CHART_DIR, 'crds')).filter((f) => f.endsWith('.yaml'));
    expect(top).toContain('gatewayroutes.edgegate.io.yaml');
    expect(chart.sort()).toEqual(top.sort());
    for (const f of top) {
      expect(read(join(CHART_DIR, 'crds', f)), `charts/edgegate/crds/${f}: run npm run gen:chart-crds`).toBe(
        read(join(REPO_ROOT, 'crds', f)),
      );
    }
  });

  it('renders RBAC from files/rbac-rules.json, which is current with src/control/sources/kube/rbac.ts', () => {
    // Compared as data: Biome may lay the committed file out differently from JSON.stringify.
    expect(JSON.parse(read(join(CHART_DIR, 'files', 'rbac-rules.json')))).toEqual(
      JSON.parse(rbacRulesJson()),
    );
    const rbac = read(join(CHART_DIR, 'templates', 'rbac.yaml'));
    expect(rbac).toContain('edgegate.rbacRules');
    // No rule of the controller is written out by hand in the templates.
    expect(rbac).not.toMatch(/gatewayroutes|endpointslices|leases/);
  });

  it('deploys the version package.json names', () => {
    const chart = parse(read(join(CHART_DIR, 'Chart.yaml'))) as { appVersion: string; version: string };
    const pkg = JSON.parse(read(join(REPO_ROOT, 'package.json'))) as { version: string };
    expect(chart.appVersion).toBe(pkg.version);
    expect(chart.version).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('has a comment on every value in values.yaml', () => {
    const lines = read(join(CHART_DIR, 'values.yaml')).split('\n');
    const undocumented: string[] = [];
    lines.forEach((line, i) => {
      const key = /^(\s*)([A-Za-z_][\w.-]*):/.exec(line);
      if (!key) return;
      let j = i - 1;
      while (j >= 0 && lines[j]!.trim() === '') j--;
      const above = lines[j] ?? '';
      const sameIndentComment = above.startsWith(`${key[1]}#`);
      if (!sameIndentComment) undocumented.push(`line ${i + 1}: ${line.trim()}`);
    });
    expect(undocumented).toEqual([]);
  });

  it('closes every object in values.schema.json (additionalProperties: false) and covers every value', () => {
    type Schema = {
      type?: string | string[];
      properties?: Record<string, Schema>;
      additionalProperties?: unknown;
    };
    const schema = JSON.parse(read(join(CHART_DIR, 'values.schema.json'))) as Schema;
    const open: string[] = [];
    const walk = (s: Schema, path: string) => {
      if (s.properties) {
        if (s.additionalProperties !== false) open.push(path || '(root)');
        for (const [k, sub] of Object.entries(s.properties)) walk(sub, `${path}.${k}`);
      }
    };
    walk(schema, '');
    expect(open).toEqual([]);

    // Every key of the default values is described by the schema (free-form Kubernetes objects stop the walk).
    const values = parse(read(join(CHART_DIR, 'values.yaml'))) as Record<string, unknown>;
    const missing: string[] = [];
    const cover = (v: unknown, s: Schema | undefined, path: string) => {
      if (!s) return void missing.push(path);
      if (v && typeof v === 'object' && !Array.isArray(v) && s.properties) {
        for (const [k, sub] of Object.entries(v)) cover(sub, s.properties[k], `${path}.${k}`);
      }
    };
    cover(values, schema, '');
    expect(missing).toEqual([]);
  });
});
