import type { PolicyRuntimeStats } from '../../cluster/worker-report.ts';
/**
 * The policy counters as Prometheus families, ready for observe/: each worker reports `PolicyRuntime.stats()`,
 * the primary sums them with `aggregatePolicyStats`, and every family in POLICY_METRICS turns the sum into samples
 * (`edgegate_policy_*`, labelled by rule and, for auth failures, policy and reason). Pure functions: no registry
 * here, so the hot path never touches prom-client.
 */

export interface AggregatedPolicyStats {
  rules: Record<
    string,
    {
      ipDenied: number;
      rateLimited: number;
      shed: number;
      concurrencyLimited: number;
      passed: number;
      inFlight: number;
      authFailures: Record<string, number>;
      forwardedForInvalid: number;
      jwksFetches: Record<string, number>;
      globalDecisions: Record<string, number>;
    }
  >;
  /** Highest overload level over the workers, and each worker's p99 delay. */
  overloadLevel: number;
  overloadDelayMs: number[];
  /** Key files refused per key set (the most any worker refused: every worker reads the same files). */
  keysRefused: Record<string, number>;
}

export function aggregatePolicyStats(
  list: ReadonlyArray<PolicyRuntimeStats | undefined>,
): AggregatedPolicyStats {
  const out: AggregatedPolicyStats = { rules: {}, overloadLevel: 0, overloadDelayMs: [], keysRefused: {} };
  for (const s of list) {
    if (!s) continue;
    out.overloadLevel = Math.max(out.overloadLevel, s.overload.level);
    out.overloadDelayMs.push(s.overload.delayMs);
    for (const [rule, c] of Object.entries(s.rules)) {
      let t = out.rules[rule];
      if (!t) {
        t = {
          ipDenied: 0,
          rateLimited: 0,
          shed: 0,
          concurrencyLimited: 0,
          passed: 0,
          inFlight: 0,
          authFailures: {},
          forwardedForInvalid: 0,
          jwksFetches: {},
          globalDecisions: {},
        };
        out.rules[rule] = t;
      }
      t.ipDenied += c.ipDenied;
      t.rateLimited += c.rateLimited;
      t.shed += c.shed;
      t.concurrencyLimited += c.concurrencyLimited;
      t.passed += c.passed;
      t.inFlight += c.inFlight;
      for (const [k, v] of Object.entries(c.authFailures)) t.authFailures[k] = (t.authFailures[k] ?? 0) + v;
      t.forwardedForInvalid += c.forwardedForInvalid ?? 0;
      for (const [k, v] of Object.entries(c.jwksFetches ?? {}))
        t.jwksFetches[k] = (t.jwksFetches[k] ?? 0) + v;
      for (const [k, v] of Object.entries(c.globalDecisions ?? {}))
        t.globalDecisions[k] = (t.globalDecisions[k] ?? 0) + v;
    }
    for (const [set, k] of Object.entries(s.keySets ?? {}))
      out.keysRefused[set] = Math.max(out.keysRefused[set] ?? 0, Object.keys(k.refused ?? {}).length);
  }
  return out;
}

export interface PolicySample {
  labels: Record<string, string>;
  value: number;
}

export interface PolicyMetricFamily {
  name: string;
  help: string;
  type: 'counter' | 'gauge';
  samples(a: AggregatedPolicyStats): PolicySample[];
}

const perRule =
  (pick: (c: AggregatedPolicyStats['rules'][string]) => number, extra: Record<string, string> = {}) =>
  (a: AggregatedPolicyStats): PolicySample[] =>
    Object.entries(a.rules).map(([rule, c]) => ({ labels: { rule, ...extra }, value: pick(c) }));

export const POLICY_METRICS: PolicyMetricFamily[] = [
  {
    name: 'edgegate_policy_ip_denied_total',
    help: 'Requests refused with 403 by an IP allow/deny list (global or the rule’s).',
    type: 'counter',
    samples: perRule((c) => c.ipDenied),
  },
  {
    name: 'edgegate_policy_rate_limited_total',
    help: 'Requests refused with 429 by the rule’s pod-wide rate limit.',
    type: 'counter',
    samples: perRule((c) => c.rateLimited),
  },
  {
    name: 'edgegate_rate_limit_global_decisions_total',
    help: 'Requests decided by a rule’s Global (Redis) rate limit, by outcome: allowed, limited (429), failed_open (the store could not decide: let through), failed_closed (the store could not decide: 503).',
    type: 'counter',
    samples: (a) =>
      Object.entries(a.rules).flatMap(([rule, c]) =>
        Object.entries(c.globalDecisions).map(([outcome, value]) => ({ labels: { rule, outcome }, value })),
      ),
  },
  {
    name: 'edgegate_policy_shed_total',
    help: 'Requests refused with 503 by load shedding: cause="overload" (priority vs. overload level) or "concurrency" (the rule’s cap).',
    type: 'counter',
    samples: (a) => [
      ...perRule((c) => c.shed, { cause: 'overload' })(a),
      ...perRule((c) => c.concurrencyLimited, { cause: 'concurrency' })(a),
    ],
  },
  {
    name: 'edgegate_policy_auth_failures_total',
    help: 'Requests refused by an auth policy, by policy (signature, jwt, external) and reason.',
    type: 'counter',
    samples: (a) =>
      Object.entries(a.rules).flatMap(([rule, c]) =>
        Object.entries(c.authFailures).map(([key, value]) => {
          const colon = key.indexOf(':');
          return { labels: { rule, policy: key.slice(0, colon), reason: key.slice(colon + 1) }, value };
        }),
      ),
  },
  {
    name: 'edgegate_policy_passed_total',
    help: 'Requests every policy of the rule let through.',
    type: 'counter',
    samples: perRule((c) => c.passed),
  },
  {
    name: 'edgegate_policy_in_flight',
    help: 'Requests in flight under a rule’s concurrency cap.',
    type: 'gauge',
    samples: perRule((c) => c.inFlight),
  },
  {
    name: 'edgegate_policy_forwarded_for_invalid_total',
    help: 'Requests whose chosen X-Forwarded-For entry was not an IP address; the nearest trusted address (next entry to the right, else the TCP peer) was used instead.',
    type: 'counter',
    samples: perRule((c) => c.forwardedForInvalid),
  },
  {
    name: 'edgegate_policy_jwks_fetches_total',
    help: 'JWKS fetches of a rule’s JWT policy by result: ok, too-large (over 256 KiB), timeout, status (not 200), invalid (not a JWK Set), error (connection).',
    type: 'counter',
    samples: (a) =>
      Object.entries(a.rules).flatMap(([rule, c]) =>
        Object.entries(c.jwksFetches).map(([result, value]) => ({ labels: { rule, result }, value })),
      ),
  },
  {
    name: 'edgegate_policy_keys_refused',
    help: 'Key files of a key set that were refused when read (a public key where a secret is needed is never an HMAC key; mixed or unparseable material); the reasons are in /debug/workers and the log.',
    type: 'gauge',
    samples: (a) =>
      Object.entries(a.keysRefused).map(([set, value]) => ({ labels: { key_set: set }, value })),
  },
  {
    name: 'edgegate_overload_level',
    help: 'Highest overload level over the workers (0 none … 3: Low, Normal and High shed).',
    type: 'gauge',
    samples: (a) => [{ labels: {}, value: a.overloadLevel }],
  },
];
