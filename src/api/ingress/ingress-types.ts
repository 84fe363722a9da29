/**
 * The parts of `networking.k8s.io/v1` Ingress and IngressClass that edgegate reads (docs/ingress.md), and the names
 * it answers to. Shapes only: the Ingress source and `edgegate migrate` hand plain objects in (from the API server
 * or from YAML), and ingress-translate.ts reads them defensively.
 */

/** `spec.controller` of an IngressClass edgegate serves. */
export const INGRESS_CONTROLLER = 'edgegate.io/ingress-controller';
/** The annotation that makes an IngressClass the cluster's default (the Ingress API's rule). */
export const DEFAULT_CLASS_ANNOTATION = 'ingressclass.kubernetes.io/is-default-class';
/** The class annotation of Ingresses written before `spec.ingressClassName` (deprecated, still widespread). */
export const LEGACY_CLASS_ANNOTATION = 'kubernetes.io/ingress.class';
/** The ingress-nginx annotation prefix. */
export const NGINX_PREFIX = 'nginx.ingress.kubernetes.io/';

export interface IngressMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  generation?: number;
  creationTimestamp?: string | Date;
  annotations?: Record<string, string>;
}

export interface IngressServiceBackend {
  name?: string;
  port?: { number?: number; name?: string };
}

export interface IngressBackend {
  service?: IngressServiceBackend;
  resource?: unknown;
}

export interface IngressPath {
  path?: string;
  pathType?: string;
  backend?: IngressBackend;
}

export interface IngressRule {
  host?: string;
  http?: { paths?: IngressPath[] };
}

export interface IngressObject {
  apiVersion?: string;
  kind?: string;
  metadata?: IngressMeta;
  spec?: {
    ingressClassName?: string;
    defaultBackend?: IngressBackend;
    rules?: IngressRule[];
    tls?: { hosts?: string[]; secretName?: string }[];
  };
  status?: unknown;
}

export interface IngressClassObject {
  metadata?: IngressMeta;
  spec?: { controller?: string };
}

/** `namespace/name` of an Ingress. */
export function ingressKey(ing: IngressObject): string {
  return `${ing.metadata?.namespace ?? 'default'}/${ing.metadata?.name ?? ''}`;
}
