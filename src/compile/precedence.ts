/**
 * compile's precedence processor: the one order of entries within a host (Gateway API's HTTPRoute precedence),
 * shared by GatewayRoutes, translated HTTPRoutes and Ingresses.
 */
import type { EntryData, MatchData } from '../table/types.ts';
import { cmp } from './context.ts';

export const PATH_RANK = { Exact: 0, PathPrefix: 1, RegularExpression: 2 } as const;

/** HTTPRoute precedence within one host: negative when `a` wins. */
export function comparePrecedence(a: EntryData, b: EntryData): number {
  const pa = a.matchData.path;
  const pb = b.matchData.path;
  return (
    PATH_RANK[pa.type] - PATH_RANK[pb.type] ||
    (pa.type !== 'RegularExpression' ? pb.value.length - pa.value.length : 0) ||
    (a.matchData.method ? 0 : 1) - (b.matchData.method ? 0 : 1) ||
    conditionCount(b.matchData) - conditionCount(a.matchData) ||
    b.matchData.queryParams.length - a.matchData.queryParams.length ||
    createdRank(a.created) - createdRank(b.created) ||
    cmp(a.route, b.route) ||
    a.rule - b.rule ||
    a.match - b.match
  );
}

/** Header and cookie matches rank alike: a cookie canary is a header match on one cookie. */
export function conditionCount(m: MatchData): number {
  return m.headers.length + (m.cookies?.length ?? 0);
}

/** Unknown creation time (0) sorts after every known one. */
export function createdRank(created: number): number {
  return created > 0 ? created : Number.MAX_SAFE_INTEGER;
}
