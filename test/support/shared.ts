/**
 * The servers global setup shares across test files. Use them for tests that do not
 * stop, restart or reconfigure a server, and that clean up (or use unique names for)
 * what they create. Tests that need an outage or other settings start their own.
 *
 * Global setup starts a shared server only if some selected test file calls
 * sharedConsulPair() / sharedKube() (it looks for those calls in the source).
 */
import { inject } from 'vitest';
import { type ConsulAgentInfo, type ConsulClient, consulClient } from './consul.ts';
import { type KubeClient, type KubeInfo, kubeClient } from './kube.ts';

export interface SharedConsulPairInfo {
  dc1: ConsulAgentInfo;
  dc2: ConsulAgentInfo;
}

export interface SharedConsulPair {
  dc1: ConsulClient;
  dc2: ConsulClient;
}

declare module 'vitest' {
  export interface ProvidedContext {
    edgegateConsulPair: SharedConsulPairInfo | null;
    edgegateKube: KubeInfo | null;
  }
}

function missing(what: string): Error {
  return new Error(
    `${what} was not started by test/support/global-setup.ts. It starts it only for test files ` +
      'that call the accessor literally (grep), and not when EDGEGATE_SHARED_SERVERS=off.',
  );
}

/** Clients for the shared Consul dc1 + dc2 pair (no ACLs), joined over WAN. */
export function sharedConsulPair(): SharedConsulPair {
  const info = inject('edgegateConsulPair');
  if (!info) throw missing('The shared Consul pair');
  return { dc1: consulClient(info.dc1), dc2: consulClient(info.dc2) };
}

/** A client for the shared kube-apiserver (+etcd). */
export function sharedKube(): KubeClient {
  const info = inject('edgegateKube');
  if (!info) throw missing('The shared kube-apiserver');
  return kubeClient(info);
}
