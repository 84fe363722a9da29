/**
 * Which Ingresses edgegate serves: the Ingress API's class rules (docs/ingress.md "Class selection").
 *
 * - An IngressClass is edgegate's when its `spec.controller` is `edgegate.io/ingress-controller`.
 * - `spec.ingressClassName` set: served when it names one of edgegate's classes (a class that does not exist, or
 *   belongs to another controller, is not served).
 * - Else the legacy `kubernetes.io/ingress.class` annotation: served when it names one of edgegate's classes or the
 *   `--ingress-class` name (what ingress-nginx did with its `--ingress-class` flag).
 * - Else (no class at all): served when the cluster's default IngressClass (annotation
 *   `ingressclass.kubernetes.io/is-default-class: "true"`) is edgegate's. With several default classes, the newest
 *   one counts, as the API server's DefaultIngressClass admission plugin picks it for new Ingresses.
 */
import {
  DEFAULT_CLASS_ANNOTATION,
  INGRESS_CONTROLLER,
  type IngressClassObject,
  type IngressObject,
  LEGACY_CLASS_ANNOTATION,
} from './ingress-types.ts';

export interface ClassSelection {
  /** Names of the IngressClasses whose controller is edgegate's. */
  ours: Set<string>;
  /** The default class (newest of those marked default) is edgegate's. */
  defaultIsOurs: boolean;
  /** `--ingress-class`: the name the legacy annotation may use (default `edgegate`). */
  legacyName: string;
}

function createdMs(c: IngressClassObject): number {
  const t = c.metadata?.creationTimestamp;
  const ms = t instanceof Date ? t.getTime() : typeof t === 'string' ? Date.parse(t) : Number.NaN;
  return Number.isFinite(ms) ? ms : 0;
}

export function classSelection(
  classes: Iterable<IngressClassObject>,
  legacyName = 'edgegate',
): ClassSelection {
  const ours = new Set<string>();
  const defaults: IngressClassObject[] = [];
  for (const c of classes) {
    const name = c.metadata?.name;
    if (!name) continue;
    if (c.spec?.controller === INGRESS_CONTROLLER) ours.add(name);
    if (c.metadata?.annotations?.[DEFAULT_CLASS_ANNOTATION] === 'true') defaults.push(c);
  }
  defaults.sort(
    (a, b) => createdMs(b) - createdMs(a) || (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''),
  );
  const newest = defaults[0]?.metadata?.name;
  return { ours, defaultIsOurs: newest !== undefined && ours.has(newest), legacyName };
}

/** Whether edgegate serves this Ingress. */
export function servesIngress(ing: IngressObject, sel: ClassSelection): boolean {
  const className = ing.spec?.ingressClassName;
  if (className) return sel.ours.has(className);
  const legacy = ing.metadata?.annotations?.[LEGACY_CLASS_ANNOTATION];
  if (legacy !== undefined && legacy !== '') return legacy === sel.legacyName || sel.ours.has(legacy);
  return sel.defaultIsOurs;
}
