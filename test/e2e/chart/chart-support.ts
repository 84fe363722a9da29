/** Shared pieces of the chart tests: render with the pinned helm, parse manifests, fetch the monitoring CRDs. */
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments, stringify } from 'yaml';
import { pinnedVersions, REPO_ROOT } from '../../support/bins.ts';
import { helm } from '../../support/helm.ts';
import type { CommandResult } from '../../support/proc.ts';
import { makeTempDir } from '../../support/tmp.ts';

export const CHART_DIR = join(REPO_ROOT, 'charts', 'edgegate');

export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  // biome-ignore lint/suspicious/noExplicitAny: rendered Kubernetes objects are checked field by field in tests
  [field: string]: any;
}

let valuesDir: string | undefined;
let counter = 0;

/** Writes a values file for helm (-f), so values keep their YAML types (no --set string coercion). */
export function valuesFile(values: Record<string, unknown>): string {
  valuesDir ??= makeTempDir('chart-values');
  const path = join(valuesDir, `values-${++counter}.yaml`);
  writeFileSync(path, stringify(values));
  return path;
}

/** `helm template` as the pinned Kubernetes version would get it (so version-gated fields render as they would). */
export async function template(
  release: string,
  namespace: string,
  values: Record<string, unknown>,
  opts: { allowFailure?: boolean } = {},
): Promise<CommandResult> {
  return helm(
    [
      'template',
      release,
      CHART_DIR,
      '--namespace',
      namespace,
      '--kube-version',
      pinnedVersions().kubernetes,
      '-f',
      valuesFile(values),
    ],
    opts,
  );
}

export async function render(
  release: string,
  namespace: string,
  values: Record<string, unknown>,
): Promise<{ yaml: string; objects: Manifest[] }> {
  const { stdout } = await template(release, namespace, values);
  return { yaml: stdout, objects: parseManifests(stdout) };
}

export function parseManifests(yaml: string): Manifest[] {
  const out: Manifest[] = [];
  for (const doc of parseAllDocuments(yaml)) {
    if (doc.errors.length > 0) throw new Error(`rendered YAML does not parse: ${doc.errors[0]!.message}`);
    const obj = doc.toJS({ maxAliasCount: -1 }) as Manifest | null;
    if (obj) out.push(obj);
  }
  return out;
}

export function toYamlStream(objects: Manifest[]): string {
  return objects.map((o) => stringify(o)).join('---\n');
}

export function find(objects: Manifest[], kind: string, name?: string): Manifest[] {
  return objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
}

export function only(objects: Manifest[], kind: string): Manifest {
  const found = find(objects, kind);
  if (found.length !== 1) throw new Error(`expected one ${kind}, got ${found.length}`);
  return found[0]!;
}

/** The gateway container of the rendered DaemonSet. */
export function gatewayContainer(objects: Manifest[]): Manifest {
  return only(objects, 'DaemonSet').spec.template.spec.containers[0];
}

export function envOf(container: Manifest): Map<string, Manifest> {
  return new Map((container.env as Manifest[]).map((e) => [e.name as unknown as string, e]));
}

/**
 * The prometheus-operator release whose published CRDs (ServiceMonitor, PodMonitor) the chart's monitors are
 * checked against. The Go module ships them (example/prometheus-operator-crd/), so the Go module proxy — the
 * same one scripts/test-deps.sh builds kube-apiserver from — provides them; no other download.
 */
export const PROMETHEUS_OPERATOR_VERSION = 'v0.85.0';
const PROMETHEUS_OPERATOR_MODULE = 'github.com/prometheus-operator/prometheus-operator';

/** The ServiceMonitor and PodMonitor CRDs as YAML, or the reason they are not available here. */
export async function monitoringCrds(): Promise<{ yaml: string } | { skipped: string }> {
  const run = promisify(execFile);
  let dir: string;
  try {
    const { stdout } = await run(
      'go',
      ['mod', 'download', '-json', `${PROMETHEUS_OPERATOR_MODULE}@${PROMETHEUS_OPERATOR_VERSION}`],
      { cwd: makeTempDir('prom-op-crds'), timeout: 300_000, maxBuffer: 1 << 20 },
    );
    dir = (JSON.parse(stdout) as { Dir?: string }).Dir ?? '';
    if (!dir) throw new Error('go mod download printed no Dir');
  } catch (err) {
    return {
      skipped: `the monitoring.coreos.com CRDs come from the Go module ${PROMETHEUS_OPERATOR_MODULE}@${PROMETHEUS_OPERATOR_VERSION} and 'go mod download' failed: ${(err as Error).message}`,
    };
  }
  const files = ['monitoring.coreos.com_servicemonitors.yaml', 'monitoring.coreos.com_podmonitors.yaml'];
  return {
    yaml: files
      .map((f) => readFileSync(join(dir, 'example', 'prometheus-operator-crd', f), 'utf8'))
      .join('\n---\n'),
  };
}
