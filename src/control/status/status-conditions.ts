/**
 * Compile diagnostics → GatewayRoute `.status`: conditions Accepted, ResolvedRefs and Programmed (and ServingStale
 * for routes with Consul backends: docs/consul.md), each with
 * observedGeneration, plus healthy endpoint counts per backend and datacenter, and `servedGeneration`. Pure: the
 * status writer supplies the time and the conditions already on the object (whose lastTransitionTime is kept while
 * the status holds).
 *
 * An invalid update of a route that was valid before keeps serving that last valid version (fail closed): Accepted
 * is False for the current generation (reason Invalid, the message names the generation served), Programmed is
 * True with observedGeneration set to the generation served (that is the generation it was computed from, as in
 * Gateway API's "Fall Back" approach), and `servedGeneration` says the same as a field.
 */
import { isCertificateRefProblem } from '../../api/certificate-refs.ts';
import type {
  BackendHealth,
  Condition,
  ConditionType,
  GatewayRouteStatus,
} from '../../api/gateway-route-status.ts';
import { formatPath } from '../../api/validate.ts';
import type { RouteStatus } from '../../compile/compile.ts';

/** Kubernetes caps condition messages at 32 KiB; keep them readable in `kubectl describe` too. */
const MAX_MESSAGE = 4096;

function clip(message: string): string {
  return message.length <= MAX_MESSAGE ? message : `${message.slice(0, MAX_MESSAGE - 1)}…`;
}

type Draft = Omit<Condition, 'lastTransitionTime'>;

/**
 * @param programmed every live worker serves the route's current compiled form (for an accepted route). Which
 * table version that is, is not part of the status (it would change every route's status on every publish): it is
 * in /debug/routes.
 */
export function desiredStatus(
  s: RouteStatus,
  programmed: boolean,
  existing: ReadonlyArray<Condition>,
  now: string,
): GatewayRouteStatus {
  const g = s.generation !== undefined ? { observedGeneration: s.generation } : {};
  const fb = s.accepted ? undefined : s.fallback;
  const served = s.accepted ? s.generation : fb?.generation;
  const servedG = served !== undefined ? { observedGeneration: served } : g;
  const drafts: Draft[] = [];
  if (s.accepted) {
    drafts.push({
      type: 'Accepted',
      status: 'True',
      reason: 'Accepted',
      message: 'the route is valid',
      ...g,
    });
  } else {
    const problems = s.errors.map((e) => `${formatPath(e.path)}: ${e.message}`);
    // The fall-back note first: a long list of problems is clipped at its end.
    const note = fb ? `${fallbackNote(fb.generation)}; ` : '';
    drafts.push({
      type: 'Accepted',
      status: 'False',
      reason: 'Invalid',
      message: clip(note + (problems.join('; ') || 'the route is invalid')),
      ...g,
    });
  }
  if (!s.accepted)
    drafts.push({
      type: 'ResolvedRefs',
      status: 'Unknown',
      reason: 'Invalid',
      message: 'backends are resolved once the route is valid',
      ...g,
    });
  else if (s.unresolved.length > 0)
    drafts.push({
      type: 'ResolvedRefs',
      status: 'False',
      // Gateway API's reasons: a backend that does not resolve wins; only Secret problems → InvalidCertificateRef.
      reason: s.unresolved.every(isCertificateRefProblem) ? 'InvalidCertificateRef' : 'BackendNotFound',
      message: clip(s.unresolved.join('; ')),
      ...g,
    });
  else
    drafts.push({
      type: 'ResolvedRefs',
      status: 'True',
      reason: 'ResolvedRefs',
      message: 'every backend resolves',
      ...g,
    });
  const which = fb ? `${servedName(fb.generation)} (the last valid version) ` : '';
  if (!s.accepted && !fb)
    drafts.push({
      type: 'Programmed',
      status: 'False',
      reason: 'Invalid',
      message: 'an invalid route is not served',
      ...g,
    });
  else if (programmed)
    drafts.push({
      type: 'Programmed',
      status: 'True',
      reason: 'Programmed',
      message: fb ? `${which}is served` : 'the route is served as it is now',
      ...servedG,
    });
  else
    drafts.push({
      type: 'Programmed',
      status: 'False',
      reason: 'Pending',
      message: fb
        ? `waiting for every proxy worker to serve ${which.trimEnd()}`
        : 'waiting for every proxy worker to serve the route as it is now',
      ...servedG,
    });

  // Only while the route shares a match with another one (the winner and the shadowed route both get it).
  if (s.conflicts && s.conflicts.length > 0)
    drafts.push({
      type: 'Conflicted',
      status: 'True',
      reason: 'MatchConflict',
      message: clip(s.conflicts.join('; ')),
      ...g,
    });
  const stale = servingStale(s, g);
  if (stale) drafts.push(stale);

  const conditions: Condition[] = drafts.map((d) => {
    const prior = existing.find((c) => c.type === d.type);
    const lastTransitionTime = prior && prior.status === d.status ? prior.lastTransitionTime : now;
    return { ...d, lastTransitionTime };
  });
  return {
    ...g,
    ...(served !== undefined ? { servedGeneration: served } : {}),
    conditions,
    backends: s.backends.map((b) => backendHealth(b, s.stale)),
  };
}

function backendHealth(b: RouteStatus['backends'][number], stale: RouteStatus['stale']): BackendHealth {
  const out: BackendHealth = { ref: b.ref, healthyEndpoints: { ...b.healthy } };
  if (b.serving !== undefined) out.servingDatacenter = b.serving;
  if (b.servingSince !== undefined) out.servingSince = b.servingSince;
  if (stale && !b.ref.startsWith('service:')) {
    const mine = stale.filter((x) => b.healthy[x.datacenter] !== undefined);
    if (mine.length > 0)
      out.staleSince = Object.fromEntries(mine.map((x) => [x.datacenter, new Date(x.since).toISOString()]));
  }
  return out;
}

const STALE_TEXT: Record<NonNullable<RouteStatus['stale']>[number]['reason'], string> = {
  SourceDown: 'Consul does not answer for it',
  Lagging: 'its Consul server lags behind the leader by more than EDGEGATE_CONSUL_STALE_AFTER',
};

/**
 * ServingStale, for routes with Consul backends only: True while the catalog data of a datacenter they use is stale
 * (the source is down for it, its servers have no leader, or it lags), naming each with the reason and since when.
 */
function servingStale(s: RouteStatus, g: { observedGeneration?: number }): Draft | undefined {
  if (!s.accepted || !s.backends.some((b) => !b.ref.startsWith('service:'))) return undefined;
  if (!s.stale || s.stale.length === 0)
    return {
      type: 'ServingStale',
      status: 'False',
      reason: 'Current',
      message: 'the catalog data of every backend datacenter is current',
      ...g,
    };
  const parts = s.stale.map(
    (x) => `datacenter ${x.datacenter}: ${STALE_TEXT[x.reason]}, since ${new Date(x.since).toISOString()}`,
  );
  const reasons = new Set(s.stale.map((x) => x.reason));
  return {
    type: 'ServingStale',
    status: 'True',
    reason: reasons.size === 1 ? s.stale[0]!.reason : 'Stale',
    message: clip(`serving the last known catalog data: ${parts.join('; ')}`),
    ...g,
  };
}

function servedName(generation: number | undefined): string {
  return generation !== undefined ? `generation ${generation}` : 'the previous version';
}

/** The start of Accepted's message when the last valid version is served (Gateway API's "Fall Back" prefix). */
export function fallbackNote(generation: number | undefined): string {
  return `Fall Back: ${servedName(generation)}, the last valid version, is still served`;
}

/** Same status, ignoring key order (the API server may reorder map keys). */
export function sameStatus(a: unknown, b: unknown): boolean {
  return canonical(a) === canonical(b);
}

function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, value) =>
    value && typeof value === 'object' && !Array.isArray(value)
      ? Object.fromEntries(Object.entries(value).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)))
      : value,
  );
}

export function conditionOf(status: unknown, type: ConditionType): Condition | undefined {
  const list = (status as { conditions?: Condition[] } | undefined)?.conditions;
  return Array.isArray(list) ? list.find((c) => c.type === type) : undefined;
}
