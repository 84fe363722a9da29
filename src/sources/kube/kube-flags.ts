/** `edgegate run` flags of the Kubernetes source → KubeOptions (kept here so the CLI stays wiring only). */
import { type KubeOptions, parseDurationMs } from './start-kube.ts';

export interface KubeFlags {
  kubeconfig?: string;
  watchNamespaces?: string;
  leaseNamespace?: string;
  leaseDuration?: string;
  renewDeadline?: string;
  retryPeriod?: string;
}

export function kubeOptionsFrom(o: KubeFlags): KubeOptions {
  const namespaces = (o.watchNamespaces ?? '')
    .split(',')
    .map((n) => n.trim())
    .filter(Boolean);
  const out: KubeOptions = {};
  if (o.kubeconfig) out.kubeconfig = o.kubeconfig;
  if (namespaces.length > 0) out.namespaces = namespaces;
  if (o.leaseNamespace) out.leaseNamespace = o.leaseNamespace;
  const lease = parseDurationMs(o.leaseDuration, '--lease-duration');
  const renew = parseDurationMs(o.renewDeadline, '--renew-deadline');
  const retry = parseDurationMs(o.retryPeriod, '--retry-period');
  if (lease !== undefined) out.leaseDurationMs = lease;
  if (renew !== undefined) out.renewDeadlineMs = renew;
  if (retry !== undefined) out.retryPeriodMs = retry;
  return out;
}
