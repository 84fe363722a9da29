/**
 * The exact Kubernetes API rights the controller needs — the one place they are written. `npm run gen:rbac`
 * writes them to charts/edgegate/files/rbac-rules.json for the Helm chart; the e2e tests bind the same rules to
 * the ServiceAccount they run the controller with.
 */
import { API_GROUP } from '../../../api/gateway-route.ts';

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

/**
 * A Role in each `--tls-secret-namespaces` namespace, only when TLS from Secrets is on: the spec.tls Secrets.
 * The controller lists and watches one Secret at a time (`fieldSelector=metadata.name=NAME`); RBAC authorizes such a
 * list/watch as the namespace's `secrets` (it ignores field selectors unless the Role names the Secret in
 * `resourceNames`), so these verbs let the controller read every Secret of the listed namespaces — hence the
 * namespace list. `get` is not needed. Names cannot be fixed in advance (route authors choose them), so no
 * `resourceNames` here; an operator who knows them may add `resourceNames` (single-name list/watch honours it).
 */
export const SECRET_RULES: PolicyRule[] = [
  { apiGroups: [''], resources: ['secrets'], verbs: ['list', 'watch'] },
];

/**
 * Cluster-wide, only with `--gateway-api` (chart: gatewayApi.enabled): the Gateway API objects and edgegate's
 * ConsulServices, Namespaces (their labels, for allowedRoutes selectors) and the status of the objects it answers.
 */
export const GATEWAY_API_RULES: PolicyRule[] = [
  {
    apiGroups: ['gateway.networking.k8s.io'],
    resources: ['gatewayclasses', 'gateways', 'httproutes', 'referencegrants'],
    verbs: ['list', 'watch'],
  },
  {
    apiGroups: ['gateway.networking.k8s.io'],
    resources: ['gatewayclasses/status', 'gateways/status', 'httproutes/status'],
    verbs: ['patch'],
  },
  { apiGroups: [API_GROUP], resources: ['consulservices'], verbs: ['list', 'watch'] },
  { apiGroups: [''], resources: ['namespaces', 'services'], verbs: ['list', 'watch'] },
  { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'watch'] },
];

/** With `--ingress`: beside WATCH_RULES (cluster-wide or in each watched namespace), the Ingresses and their status. */
export const INGRESS_RULES: PolicyRule[] = [
  { apiGroups: ['networking.k8s.io'], resources: ['ingresses'], verbs: ['list', 'watch'] },
  // Merge patches of status.loadBalancer only, by the leader.
  { apiGroups: ['networking.k8s.io'], resources: ['ingresses/status'], verbs: ['patch'] },
];

/** With `--ingress`: IngressClasses are cluster-scoped, so always a ClusterRole (read only). */
export const INGRESS_CLASS_RULES: PolicyRule[] = [
  { apiGroups: ['networking.k8s.io'], resources: ['ingressclasses'], verbs: ['list', 'watch'] },
];

export function rbacRulesJson(): string {
  return `${JSON.stringify(
    {
      watchRules: WATCH_RULES,
      leaseRules: LEASE_RULES,
      secretRules: SECRET_RULES,
      ingressRules: INGRESS_RULES,
      ingressClassRules: INGRESS_CLASS_RULES,
      gatewayApiRules: GATEWAY_API_RULES,
    },
    null,
    2,
  )}\n`;
}
