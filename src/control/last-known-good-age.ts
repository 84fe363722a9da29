/**
 * The age check of the last-known-good table at a cold start (`--last-known-good-max-age`,
 * `--last-known-good-when-stale`): a table saved longer ago than the max age is stale — served with the stale
 * warning, or refused, as configured; either way never silently (an error line, the
 * `edgegate_last_known_good_stale` metric, and `/debug/sources` → `lastKnownGood`). A file with no `savedAt` (an
 * older format) has an unknown age, which counts as too old when a max age is set.
 */
import type { LastKnownGoodFigures } from './metrics/consul-metrics.ts';

export type WhenStale = 'serve' | 'refuse';

export interface LastKnownGoodAgePolicy {
  /** 0: the age is not limited. */
  maxAgeMs: number;
  whenStale: WhenStale;
}

export const DEFAULT_LAST_KNOWN_GOOD_AGE: LastKnownGoodAgePolicy = { maxAgeMs: 0, whenStale: 'serve' };

export interface LastKnownGoodVerdict extends LastKnownGoodFigures {
  savedAt: string | undefined;
  maxAgeSeconds: number;
  whenStale: WhenStale;
  /** The line to log (error level) when the table is stale; undefined when it is not. */
  warning: string | undefined;
}

export function judgeLastKnownGood(
  savedAt: string | undefined,
  now: number,
  policy: LastKnownGoodAgePolicy,
): LastKnownGoodVerdict {
  const saved = savedAt === undefined ? Number.NaN : Date.parse(savedAt);
  const known = Number.isFinite(saved);
  const ageMs = known ? Math.max(0, now - saved) : Number.POSITIVE_INFINITY;
  const stale = policy.maxAgeMs > 0 && ageMs > policy.maxAgeMs;
  const refused = stale && policy.whenStale === 'refuse';
  const age = known ? `${Math.round(ageMs / 1000)} s old (saved ${savedAt})` : 'of unknown age (no savedAt)';
  const limit = `${Math.round(policy.maxAgeMs / 1000)} s`;
  return {
    savedAt,
    ageSeconds: known ? ageMs / 1000 : -1,
    stale,
    refused,
    maxAgeSeconds: policy.maxAgeMs / 1000,
    whenStale: policy.whenStale,
    warning: !stale
      ? undefined
      : refused
        ? `the last-known-good table is ${age}, over --last-known-good-max-age ${limit}: not served (--last-known-good-when-stale refuse); waiting for the live sources`
        : `the last-known-good table is ${age}, over --last-known-good-max-age ${limit}: serving it as stale until the live sources sync (--last-known-good-when-stale serve)`,
  };
}
