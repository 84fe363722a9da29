/**
 * The exact Kubernetes API rights the controller needs — the one place they are written. `npm run gen:rbac`
 * writes them to charts/edgegate/files/rbac-rules.json for the Helm chart; the e2e tests bind the same rules to
 * the ServiceAccount they run the controller with.
 */
import { API_GROUP } from '../../api/gateway-route.ts';

export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

/** Cluster-wide (a ClusterRole), or a Role in each watched namespace when `--watch-namespaces` is given. */
export const WATCH_RULES: PolicyRule[] = [
  { apiGroups: [API_GROUP], resources: ['gatewayroutes'], verbs: ['get', 'list', 'watch'] },
  // Merge patches of .status only; the controller never writes a spec.
  { apiGroups: [API_GROUP], resources: ['gatewayroutes/status'], verbs: ['patch'] },
  // Service ports (number → target port) and existence; EndpointSlices give the ready endpoints.
  { apiGroups: [''], resources: ['services'], verbs: ['list', 'watch'] },
  { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'watch'] },
  // "route became invalid / valid again", in the route's namespace.
  { apiGroups: ['events.k8s.io'], resources: ['events'], verbs: ['create'] },
];

/** A Role in the controller's own namespace (POD_NAMESPACE): the leader-election Lease. */
export const LEASE_RULES: PolicyRule[] = [
  { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] },
];

export function rbacRulesJson(): string {
  return `${JSON.stringify({ watchRules: WATCH_RULES, leaseRules: LEASE_RULES }, null, 2)}\n`;
}
