/**
 * vitest global setup: starts ONE Consul pair, ONE kube-apiserver(+etcd) and ONE real
 * node (test/support/node.ts) for the whole run, in parallel, and provides their
 * coordinates to test files (inject()). See test/support/shared.ts and node-client.ts
 * for the accessors and test/support/README.md.
 *
 * A server is started only if a selected test file mentions its accessor
 * (sharedConsulPair( / sharedKube( / sharedNode( ), so unit-only runs start nothing.
 * EDGEGATE_SHARED_SERVERS=off never starts them; =on always does.
 *
 * A node that cannot start does not stop the run: the node tests fail with the reason.
 */
import { readFileSync } from 'node:fs';
import type { TestProject } from 'vitest/node';
import { type ConsulPair, startConsulPair } from './consul.ts';
import { type KubeServer, startKube } from './kube.ts';
import { type RealNode, startNode } from './node.ts';
import { formatTail } from './proc.ts';
import './shared.ts';
import './node-client.ts';

async function wanted(project: TestProject): Promise<{ consul: boolean; kube: boolean; node: boolean }> {
  const mode = process.env.EDGEGATE_SHARED_SERVERS ?? 'auto';
  if (mode === 'off') return { consul: false, kube: false, node: false };
  if (mode === 'on') return { consul: true, kube: true, node: true };
  // The CLI file filters (`vitest run test/e2e/x`): vitest keeps them on internal fields only.
  const internals = project.vitest as unknown as { filenamePattern?: string[] };
  const globals = project.globalConfig as unknown as { _cliFilters?: string[] };
  const filters = internals.filenamePattern ?? globals._cliFilters ?? [];
  const { testFiles } = await project.globTestFiles(filters.length > 0 ? filters : undefined);
  let consul = false;
  let kube = false;
  let node = false;
  for (const file of testFiles) {
    const src = readFileSync(file, 'utf8');
    consul ||= /\bsharedConsulPair\s*\(/.test(src);
    kube ||= /\bsharedKube\s*\(/.test(src);
    node ||= /\bsharedNode\s*\(/.test(src);
  }
  return { consul, kube, node };
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const want = await wanted(project);
  const started = Date.now();
  const [consulResult, kubeResult, nodeResult] = await Promise.allSettled([
    want.consul ? startConsulPair() : Promise.resolve(null),
    want.kube ? startKube() : Promise.resolve(null),
    want.node ? startNode() : Promise.resolve(null),
  ]);
  const consul: ConsulPair | null = consulResult.status === 'fulfilled' ? consulResult.value : null;
  const kube: KubeServer | null = kubeResult.status === 'fulfilled' ? kubeResult.value : null;
  const node: RealNode | null = nodeResult.status === 'fulfilled' ? nodeResult.value : null;
  const nodeReason =
    nodeResult.status === 'rejected'
      ? String((nodeResult.reason as Error)?.message ?? nodeResult.reason)
      : undefined;
  const nodeError =
    nodeReason && !nodeReason.startsWith('the real node')
      ? `the real node did not start: ${nodeReason}`
      : nodeReason;
  if (nodeError) console.error(`[harness] ${nodeError}`);
  const teardown = async () => {
    const [, , nodeLeft] = await Promise.allSettled([consul?.stop(), kube?.stop(), node?.stop()]);
    // The node removes everything it made; anything still there fails the run (a second run must find nothing).
    if (nodeLeft.status === 'rejected') throw nodeLeft.reason;
    if (nodeLeft.value && nodeLeft.value.length > 0)
      throw new Error(`the real node left things behind: ${nodeLeft.value.join('; ')}`);
  };
  const failures = [consulResult, kubeResult].flatMap((r) => (r.status === 'rejected' ? [r.reason] : []));
  if (failures.length > 0) {
    await teardown().catch((err: unknown) => console.error(`[harness] ${String(err)}`));
    throw failures[0];
  }
  if (consul || kube || node) {
    const what = [
      consul && 'consul dc1+dc2',
      kube && 'kube-apiserver+etcd',
      node && `real node ${node.info.nodeIp} (${JSON.stringify(node.info.timings)})`,
    ]
      .filter(Boolean)
      .join(', ');
    console.log(`[harness] shared servers up in ${Date.now() - started} ms: ${what}`);
  }
  project.provide('edgegateConsulPair', consul ? { dc1: consul.dc1.info(), dc2: consul.dc2.info() } : null);
  project.provide('edgegateKube', kube ? kube.info() : null);
  project.provide('edgegateNode', node ? node.info : nodeError ? { error: nodeError } : null);
  return async () => {
    // A server that died during the run is worth a log tail even if no test noticed.
    for (const a of consul ? [consul.dc1, consul.dc2] : []) {
      if (!a.running()) console.error(formatTail(`consul-${a.datacenter}`, a.logPath, 40));
    }
    await teardown();
  };
}
