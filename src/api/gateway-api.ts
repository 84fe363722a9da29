/**
 * The Gateway API objects edgegate reads (gateway.networking.k8s.io/v1: GatewayClass, Gateway, HTTPRoute;
 * v1beta1: ReferenceGrant) and its own backend kind ConsulService (edgegate.io/v1alpha1), as plain data: the
 * fields the translation reads, typed loosely (the API server has validated them against the standard-channel
 * CRDs; translate.ts still checks what it relies on). Pure: no I/O.
 */

export const GATEWAY_API_GROUP = 'gateway.networking.k8s.io';
/** The GatewayClass controllerName edgegate answers. */
export const GATEWAY_CONTROLLER_NAME = 'edgegate.io/gateway';
export const CONSUL_SERVICE_KIND = 'ConsulService';
export const CONSUL_SERVICE_PLURAL = 'consulservices';

export interface ObjectMetaLite {
  name: string;
  namespace?: string;
  generation?: number;
  uid?: string;
  creationTimestamp?: string | Date;
  labels?: Record<string, string>;
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime?: string;
}

export interface GatewayClassObject {
  metadata: ObjectMetaLite;
  spec: { controllerName: string };
  status?: { conditions?: Condition[] };
}

export interface SecretObjectReference {
  group?: string;
  kind?: string;
  name: string;
  namespace?: string;
}

export interface RouteGroupKind {
  group?: string;
  kind: string;
}

export interface ListenerSpec {
  name: string;
  hostname?: string;
  port: number;
  protocol: string;
  tls?: { mode?: string; certificateRefs?: SecretObjectReference[] };
  allowedRoutes?: {
    namespaces?: { from?: 'All' | 'Same' | 'Selector'; selector?: LabelSelector };
    kinds?: RouteGroupKind[];
  };
}

export interface GatewayObject {
  metadata: ObjectMetaLite;
  spec: {
    gatewayClassName: string;
    listeners: ListenerSpec[];
    addresses?: { type?: string; value: string }[];
  };
  status?: unknown;
}

export interface ParentReference {
  group?: string;
  kind?: string;
  namespace?: string;
  name: string;
  sectionName?: string;
  port?: number;
}

export interface BackendRefSpec {
  group?: string;
  kind?: string;
  name: string;
  namespace?: string;
  port?: number;
  weight?: number;
  filters?: unknown[];
}

export interface HTTPRouteFilterSpec {
  type: string;
  requestHeaderModifier?: unknown;
  responseHeaderModifier?: unknown;
  requestRedirect?: {
    scheme?: string;
    hostname?: string;
    port?: number;
    statusCode?: number;
    path?: { type: string; replaceFullPath?: string; replacePrefixMatch?: string };
  };
  urlRewrite?: {
    hostname?: string;
    path?: { type: string; replaceFullPath?: string; replacePrefixMatch?: string };
  };
  [other: string]: unknown;
}

export interface HTTPRouteMatchSpec {
  path?: { type?: string; value?: string };
  headers?: { type?: string; name: string; value: string }[];
  queryParams?: { type?: string; name: string; value: string }[];
  method?: string;
}

export interface HTTPRouteRuleSpec {
  name?: string;
  matches?: HTTPRouteMatchSpec[];
  filters?: HTTPRouteFilterSpec[];
  backendRefs?: BackendRefSpec[];
  timeouts?: { request?: string; backendRequest?: string };
  [other: string]: unknown;
}

export interface HTTPRouteObject {
  metadata: ObjectMetaLite;
  spec: { parentRefs?: ParentReference[]; hostnames?: string[]; rules?: HTTPRouteRuleSpec[] };
  status?: { parents?: RouteParentStatus[] };
}

export interface ReferenceGrantObject {
  metadata: ObjectMetaLite;
  spec: {
    from: { group: string; kind: string; namespace: string }[];
    to: { group: string; kind: string; name?: string }[];
  };
}

/** edgegate.io/v1alpha1 ConsulService: a Consul service as an HTTPRoute backend. */
export interface ConsulServiceObject {
  metadata: ObjectMetaLite;
  spec: { service: string; datacenter?: string; tags?: string[]; passingOnly?: boolean };
}

export interface NamespaceObject {
  metadata: ObjectMetaLite;
}

export interface RouteParentStatus {
  parentRef: ParentReference;
  controllerName: string;
  conditions: Condition[];
}

export interface ListenerStatus {
  name: string;
  supportedKinds: RouteGroupKind[];
  attachedRoutes: number;
  conditions: Condition[];
}

export interface GatewayStatus {
  addresses?: { type: string; value: string }[];
  conditions: Condition[];
  listeners: ListenerStatus[];
}

/** Everything the Gateway API source saw, as one snapshot. */
export interface GatewayApiSnapshot {
  classes: GatewayClassObject[];
  gateways: GatewayObject[];
  routes: HTTPRouteObject[];
  grants: ReferenceGrantObject[];
  consulServices: ConsulServiceObject[];
  namespaces: NamespaceObject[];
  /** Services that exist (`namespace/name`) with their port numbers: backendRefs to others are BackendNotFound. */
  services: Record<string, number[]>;
}

export function emptyGatewayApiSnapshot(): GatewayApiSnapshot {
  return {
    classes: [],
    gateways: [],
    routes: [],
    grants: [],
    consulServices: [],
    namespaces: [],
    services: {},
  };
}
