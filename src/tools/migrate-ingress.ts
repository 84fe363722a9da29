/**
 * `edgegate migrate`: Ingress YAML (one or more documents; other kinds are skipped) → the equivalent GatewayRoutes
 * as YAML, made by the same translation the Ingress source serves (api/ingress/ingress-translate.ts). Every
 * annotation that is not carried over gets a comment line above the routes of its Ingress; a refused Ingress (which
 * the Ingress source would not serve) is translated without what was refused, and says so. Each route is checked
 * with the GatewayRoute validator; a problem is a comment too and makes the run fail.
 */
import { parseAllDocuments, stringify } from 'yaml';
import { translateIngresses } from '../api/ingress/ingress-translate.ts';
import type { IngressObject } from '../api/ingress/ingress-types.ts';
import { formatPath, validateRoute } from '../api/validate.ts';
import { routePolicyErrors } from '../compile/policies.ts';

export interface MigrateResult {
  /** YAML with comments. */
  output: string;
  ingresses: number;
  routes: number;
  /** Annotations not carried over (unsupported or refused). */
  notes: number;
  /** Routes the validator refused (a bug of the translation if ever non-zero). */
  invalid: number;
}

/** Translates the Ingress documents of `texts` (each a YAML stream, named for messages). */
export function migrateIngressYaml(texts: { name: string; text: string }[]): MigrateResult {
  const ingresses: IngressObject[] = [];
  const hadNamespace = new Set<IngressObject>();
  const skipped: string[] = [];
  for (const { name, text } of texts) {
    for (const doc of parseAllDocuments(text)) {
      if (doc.errors.length > 0) throw new Error(`${name}: ${doc.errors[0]!.message}`);
      const top = doc.toJS() as (IngressObject & { items?: unknown }) | null;
      if (!top || typeof top !== 'object') continue;
      // `kubectl get ingress -o yaml` prints a List of them.
      const objs = (Array.isArray(top.items) ? top.items : [top]) as IngressObject[];
      for (const obj of objs) {
        if (!obj || typeof obj !== 'object' || obj.kind !== 'Ingress') continue;
        if (obj.apiVersion !== 'networking.k8s.io/v1') {
          skipped.push(
            `# skipped ${obj.metadata?.name ?? '?'} (${name}): apiVersion ${obj.apiVersion} (only networking.k8s.io/v1)`,
          );
          continue;
        }
        if (obj.metadata?.namespace) hadNamespace.add(obj);
        ingresses.push(obj);
      }
    }
  }
  const t = translateIngresses(ingresses, { includeRefused: true });
  const byKey = new Map(t.routes.map((r) => [`${r.metadata.namespace}/${r.metadata.name}`, r]));
  const out: string[] = [...skipped];
  let notes = 0;
  let invalid = 0;
  let routes = 0;
  t.results.forEach((res, i) => {
    const ing = ingresses[i]!;
    out.push(
      `# From Ingress ${res.ingress}${ing.spec?.ingressClassName ? ` (class ${ing.spec.ingressClassName})` : ''}`,
    );
    if (res.refused)
      out.push(
        '# REFUSED: the edgegate Ingress source would not serve this Ingress; the routes below lack what was refused',
      );
    for (const n of res.notes) {
      notes++;
      const what = n.annotation ? `${n.annotation}: ` : '';
      out.push(
        `# ${n.kind === 'refused' ? 'NOT CARRIED OVER (refused)' : 'NOT CARRIED OVER'}: ${what}${n.message}`.replace(
          /\n/g,
          ' ',
        ),
      );
    }
    for (const key of res.routes) {
      const route = byKey.get(key)!;
      const v = validateRoute(route);
      const errors = v.ok ? routePolicyErrors(v.route.spec) : v.errors;
      for (const e of errors) {
        invalid++;
        out.push(`# INVALID: ${route.metadata.name} ${formatPath(e.path)}: ${e.message}`);
      }
      const doc = hadNamespace.has(ing) ? route : { ...route, metadata: { name: route.metadata.name } };
      out.push('---', stringify(doc).trimEnd());
      routes++;
    }
    if (res.routes.length === 0) out.push('# (no GatewayRoute: nothing of this Ingress can be served)');
  });
  return { output: `${out.join('\n')}\n`, ingresses: ingresses.length, routes, notes, invalid };
}
