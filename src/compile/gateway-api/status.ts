/**
 * The Gateway API statuses to write, pure: the translation's (translate.ts) plus what compile learned about each
 * translated route. A translated route compile refused (a regular expression the proxy cannot run, …) makes the
 * HTTPRoute Accepted=False (UnsupportedValue, naming the field); a Consul service the catalog does not know makes
 * ResolvedRefs=False (BackendNotFound); a backend with no healthy endpoint is reported, without changing Accepted
 * or ResolvedRefs, in the edgegate.io/BackendsHealthy condition (False, NoHealthyEndpoints); a match that another
 * route shadows (conflicts.ts) in edgegate.io/Conflicted.
 */
import type { Condition, RouteParentStatus } from '../../api/gateway-api.ts';
import { formatPath } from '../../api/validate.ts';
import type { RouteStatus } from '../compile.ts';
import { type GatewayApiResult, HTTPROUTE_SUFFIX, INVALID_BACKEND_SERVICE } from './translate.ts';

export const BACKENDS_HEALTHY = 'edgegate.io/BackendsHealthy';
export const CONFLICTED = 'edgegate.io/Conflicted';

export interface GatewayApiDesired {
  kind: 'gatewayclasses' | 'gateways' | 'httproutes';
  namespace?: string;
  name: string;
  status: Record<string, unknown>;
}

/** `ns/name..httproute` (compile's route key of a translated route) → `ns/name` of the HTTPRoute. */
export function httpRouteOf(routeKey: string): string | undefined {
  return routeKey.endsWith(HTTPROUTE_SUFFIX) ? routeKey.slice(0, -HTTPROUTE_SUFFIX.length) : undefined;
}

function replace(conditions: Condition[], next: Condition): Condition[] {
  return [...conditions.filter((c) => c.type !== next.type), next];
}

export function gatewayApiStatuses(
  result: GatewayApiResult,
  compiled: ReadonlyArray<RouteStatus>,
): GatewayApiDesired[] {
  const out: GatewayApiDesired[] = [];
  for (const [name, s] of result.classStatuses)
    out.push({ kind: 'gatewayclasses', name, status: { conditions: s.conditions } });
  for (const [key, s] of result.gatewayStatuses) {
    const [namespace, name] = key.split('/') as [string, string];
    out.push({ kind: 'gateways', namespace, name, status: s.status as unknown as Record<string, unknown> });
  }
  const byRoute = new Map<string, RouteStatus>();
  for (const s of compiled) {
    const r = httpRouteOf(s.route);
    if (r) byRoute.set(r, s);
  }
  for (const [key, s] of result.routeStatuses) {
    const [namespace, name] = key.split('/') as [string, string];
    const c = byRoute.get(key);
    const gen = s.generation;
    const og = gen !== undefined ? { observedGeneration: gen } : {};
    const parents: RouteParentStatus[] = s.parents.map((p) => {
      let conditions = p.conditions;
      const accepted = conditions.find((x) => x.type === 'Accepted')?.status === 'True';
      if (c && accepted && !c.accepted && c.errors.length > 0) {
        const e = c.errors[0]!;
        conditions = replace(conditions, {
          type: 'Accepted',
          status: 'False',
          reason: 'UnsupportedValue',
          message: `${formatPath(e.path)}: ${e.message}`.replaceAll('.backends', '.backendRefs'),
          ...og,
        });
      }
      const resolved = conditions.find((x) => x.type === 'ResolvedRefs')?.status === 'True';
      const missing = c?.unresolved.filter((u) => !u.includes(INVALID_BACKEND_SERVICE)) ?? [];
      if (c && resolved && missing.length > 0)
        conditions = replace(conditions, {
          type: 'ResolvedRefs',
          status: 'False',
          reason: 'BackendNotFound',
          message: missing.join('; '),
          ...og,
        });
      if (c && accepted) {
        const empty = c.backends
          .filter((b) => !b.ref.includes(INVALID_BACKEND_SERVICE))
          .filter((b) => Object.values(b.healthy).reduce((n, x) => n + x, 0) === 0)
          .map((b) => b.ref);
        conditions = replace(
          conditions,
          empty.length > 0
            ? {
                type: BACKENDS_HEALTHY,
                status: 'False',
                reason: 'NoHealthyEndpoints',
                message: `no healthy endpoint: ${empty.join(', ')}`,
                ...og,
              }
            : {
                type: BACKENDS_HEALTHY,
                status: 'True',
                reason: 'HealthyEndpoints',
                message: 'every backend has a healthy endpoint',
                ...og,
              },
        );
        const shadowed = c.conflicts ?? [];
        conditions = replace(
          conditions,
          shadowed.length > 0
            ? {
                type: CONFLICTED,
                status: 'True',
                reason: 'MatchConflict',
                message: shadowed.join('; '),
                ...og,
              }
            : {
                type: CONFLICTED,
                status: 'False',
                reason: 'NoConflicts',
                message: 'no match is shared with another route',
                ...og,
              },
        );
      }
      return { ...p, conditions };
    });
    out.push({ kind: 'httproutes', namespace, name, status: { parents } });
  }
  return out;
}
