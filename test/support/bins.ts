/**
 * Paths of the real-server binaries built by scripts/test-deps.sh, computed from the
 * same pinned versions file the script reads (scripts/test-deps.versions).
 */
import { accessSync, constants, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const VERSIONS_FILE = join(REPO_ROOT, 'scripts', 'test-deps.versions');

export type BinaryName =
  | 'consul'
  | 'kube-apiserver'
  | 'kubectl'
  | 'etcd'
  | 'helm'
  | 'h2spec'
  // The real node (test/support/node.ts).
  | 'kubelet'
  | 'kube-scheduler'
  | 'kube-controller-manager'
  | 'containerd'
  | 'containerd-shim-runc-v2'
  | 'ctr'
  // Prometheus with Kubernetes service discovery (test/e2e/node/prometheus.test.ts).
  | 'prometheus'
  // A minimal OpenTelemetry Collector (OTLP receiver + file exporter) for test/e2e/tracing.
  | 'otelcol';

export interface PinnedVersions {
  consul: string;
  kubernetes: string;
  etcd: string;
  helm: string;
  h2spec: string;
  containerd: string;
  prometheus: string;
  otelcol: string;
}

/** The pins in scripts/test-deps.versions. */
export function pinnedVersions(): PinnedVersions {
  const vars = new Map<string, string>();
  for (const raw of readFileSync(VERSIONS_FILE, 'utf8').split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    const m = /^([A-Z0-9_]+)=(\S+)$/.exec(line);
    if (m) vars.set(m[1]!, m[2]!);
  }
  const get = (k: string): string => {
    const v = vars.get(k);
    if (!v) throw new Error(`${k} is not set in ${VERSIONS_FILE}`);
    return v;
  };
  return {
    consul: get('CONSUL_VERSION'),
    kubernetes: get('KUBERNETES_VERSION'),
    etcd: get('ETCD_VERSION'),
    helm: get('HELM_VERSION'),
    h2spec: get('H2SPEC_VERSION'),
    containerd: get('CONTAINERD_VERSION'),
    prometheus: get('PROMETHEUS_VERSION'),
    otelcol: get('OTELCOL_VERSION'),
  };
}

/** ${EDGEGATE_CACHE_DIR:-~/.cache/edgegate}/bin, as in the install script. */
export function binDir(): string {
  const cache = process.env.EDGEGATE_CACHE_DIR || join(homedir(), '.cache', 'edgegate');
  return join(cache, 'bin');
}

/** Absolute path of a pinned binary; throws with the fix if it has not been built. */
export function binPath(name: BinaryName): string {
  const v = pinnedVersions();
  const version =
    name === 'consul'
      ? v.consul
      : name === 'etcd'
        ? v.etcd
        : name === 'helm'
          ? v.helm
          : name === 'h2spec'
            ? v.h2spec
            : name === 'containerd' || name === 'containerd-shim-runc-v2' || name === 'ctr'
              ? v.containerd
              : name === 'prometheus'
                ? v.prometheus
                : name === 'otelcol'
                  ? v.otelcol
                  : v.kubernetes;
  const path = join(binDir(), `${name}-${version}`);
  try {
    accessSync(path, constants.X_OK);
  } catch {
    throw new Error(`${name} ${version} is not installed at ${path}: run 'bash scripts/test-deps.sh' first`);
  }
  return path;
}

/** True if every pinned binary is present. */
export function allBinariesPresent(): boolean {
  try {
    for (const n of ['consul', 'kube-apiserver', 'kubectl', 'etcd', 'helm'] as const) binPath(n);
    return true;
  } catch {
    return false;
  }
}
