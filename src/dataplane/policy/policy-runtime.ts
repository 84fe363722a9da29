/**
 * The policies of a worker. Built from plain table data (`EntryData.policies`) plus the pod-wide settings; every
 * object that does I/O — JWKS fetches, external auth calls, key-set reads, the IPC coordinator — is made here, in
 * the worker, never in compile/.
 *
 * The pipeline calls `gate.run()` once per request, after the route match and before an endpoint is picked; the
 * order is fixed:
 *
 *   1. IP rules        global deny / allow, then the rule's deny / allow            → 403 EDGEGATE_IP_DENIED
 *   2. overload guard  the rule's priority vs. the worker's overload level          → 503 EDGEGATE_OVERLOADED
 *   3. rate limit      pod-wide token bucket (per rule, client address or header)   → 429 EDGEGATE_RATE_LIMITED
 *   4. concurrency     requests in flight for the rule                              → 503 EDGEGATE_CONCURRENCY_LIMITED
 *   5. signature       HMAC over method, path, query, date, body digest; replay     → 401 EDGEGATE_SIGNATURE_INVALID
 *   6. JWT             bearer token                                                 → 401 EDGEGATE_JWT_INVALID
 *   7. external auth   the auth service's answer                                    → its status / 503
 *   then canary steering (header / cookie matches, already decided by the match) and balancing.
 *
 * Cheap checks come first so a flood of unauthenticated requests costs a map lookup, not an HMAC or a JWKS
 * fetch; auth comes after the rate limit so failing logins are limited too.
 */
import type { IncomingMessage } from 'node:http';
import type { Dispatcher } from 'undici';
import type { PolicyCoordinator } from '../../cluster/policy-state.ts';
import type { PolicyRuntimeStats, RuleCounters } from '../../cluster/worker-report.ts';
import { checkIp, IpMatcher } from '../../table/ip-rules.ts';
import {
  DEFAULT_POLICY_SETTINGS,
  type PolicyData,
  type PolicySettings,
  priorityRank,
} from '../../table/policy-types.ts';
import { type ClientAddress, clientAddress } from './client-address.ts';
import { createAuthAgent, ExternalAuthClient } from './external-auth.ts';
import { JwtVerifier } from './jwt.ts';
import { KeyStore } from './key-store.ts';
import { OverloadGuard } from './overload-guard.ts';
import { RateLimiter } from './rate-limiter.ts';
import { SignatureVerifier } from './signature.ts';
import { type Denial, deny, type Pass, type Verdict } from './verdict.ts';

const NORMAL_RANK = priorityRank('Normal');
const STORE_FAILURE_LOG_MS = 10_000;

/** Where the runtime reports what an operator must fix (a refused key file); the worker's logger. */
export interface PolicyLog {
  warn(message: string, meta?: Record<string, unknown>): unknown;
}

/** What a gate needs to know about a request besides the request object. */
export interface PolicyRequest {
  req: IncomingMessage;
  requestId: string;
  method: string;
  /**
   * The normalized request path: the one routes matched and (before a URLRewrite) the upstream receives. Every
   * policy sees this one: a signature is verified over it, the auth service is sent it.
   */
  path: string;
  /** The path as received (origin form): a signature policy refuses a request whose path normalization changed. */
  rawPath: string;
  /** The query as received and as forwarded (never rewritten). */
  rawQuery: string;
  host: string;
  proto: 'http' | 'https';
}

function newCounters(): RuleCounters {
  return {
    ipDenied: 0,
    rateLimited: 0,
    shed: 0,
    concurrencyLimited: 0,
    authFailures: {},
    passed: 0,
    forwardedForInvalid: 0,
    jwksFetches: {},
  };
}

/** One rule's policies, rebuilt with every table (cheap: the stateful parts are shared through the runtime). */
export class RuleGate {
  readonly ruleId: string;
  readonly #rt: PolicyRuntime;
  readonly #counters: RuleCounters;
  readonly #allow: IpMatcher | undefined;
  readonly #deny: IpMatcher | undefined;
  readonly #rank: number;
  readonly #rate: RateLimiter | undefined;
  readonly #ratePolicyHeader: string | undefined;
  readonly #maxInFlight: number;
  readonly #signature: SignatureVerifier | undefined;
  readonly #jwt: JwtVerifier | undefined;
  readonly #ext: ExternalAuthClient | undefined;
  /** Lower-case headers policies own on the way upstream: client copies are removed. */
  readonly #strip: string[];
  readonly #needsAddress: boolean;

  constructor(ruleId: string, data: PolicyData, rt: PolicyRuntime, rate: RateLimiter | undefined) {
    this.ruleId = ruleId;
    this.#rt = rt;
    this.#counters = rt.counters(ruleId);
    this.#allow = data.ipAllow?.length ? new IpMatcher(data.ipAllow) : undefined;
    this.#deny = data.ipDeny?.length ? new IpMatcher(data.ipDeny) : undefined;
    this.#rank = priorityRank(data.priority);
    this.#rate = rate;
    if (data.rateLimit) {
      const w = data.rateLimit.periodMs / 1000;
      this.#ratePolicyHeader = `"${ruleId.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}";q=${data.rateLimit.requests};w=${Number.isInteger(w) ? w : w.toFixed(3)}`;
    }
    this.#maxInFlight =
      data.maxConcurrentRequests !== undefined
        ? Math.max(1, Math.ceil(data.maxConcurrentRequests / rt.settings.workers))
        : 0;
    const fail = (policy: string) => (reason: string) => {
      const k = `${policy}:${reason}`;
      this.#counters.authFailures[k] = (this.#counters.authFailures[k] ?? 0) + 1;
    };
    this.#signature = data.signature
      ? new SignatureVerifier(data.signature, rt.keys, rt.coordinator, fail('signature'))
      : undefined;
    this.#jwt = data.jwt ? rt.jwtVerifier(ruleId, data.jwt, fail('jwt')) : undefined;
    this.#ext = data.externalAuth
      ? new ExternalAuthClient(data.externalAuth, rt.authAgent, fail('external'))
      : undefined;
    this.#strip = [
      ...(data.jwt?.forwardClaims.map((c) => c.header) ?? []),
      ...(data.externalAuth?.responseHeaders ?? []),
    ];
    this.#needsAddress =
      this.#allow !== undefined ||
      this.#deny !== undefined ||
      rt.hasGlobalIpRules ||
      data.rateLimit?.key === 'ClientAddress' ||
      data.externalAuth !== undefined;
  }

  async run(p: PolicyRequest): Promise<Verdict> {
    const c = this.#counters;
    const rt = this.#rt;
    let client: ClientAddress | undefined;
    if (this.#needsAddress) {
      client = clientAddress(
        p.req.socket.remoteAddress,
        p.req.headers['x-forwarded-for'],
        rt.settings.trustedHops,
      );
      if (client.substituted) c.forwardedForInvalid++;
      const why =
        checkIp(client.addr, rt.globalAllow, rt.globalDeny) ?? checkIp(client.addr, this.#allow, this.#deny);
      if (why) {
        c.ipDenied++;
        return deny('EDGEGATE_IP_DENIED', p.requestId, { reason: why });
      }
    }
    if (rt.guard.sheds(this.#rank)) {
      c.shed++;
      return deny('EDGEGATE_OVERLOADED', p.requestId, {
        headers: { 'retry-after': String(rt.guard.retryAfterS()) },
      });
    }
    if (this.#rate) {
      const d = this.#rate.data;
      const key =
        d.key === 'Route'
          ? ''
          : d.key === 'ClientAddress'
            ? client!.text
            : headerKey(p.req.headers[d.header!]);
      const decision = await this.#rate.take(key);
      if (this.#rate.data.scope === 'Global') {
        const outcome = decision.storeFailed
          ? decision.allowed
            ? 'failed_open'
            : 'failed_closed'
          : decision.allowed
            ? 'allowed'
            : 'limited';
        c.globalDecisions ??= {};
        c.globalDecisions[outcome] = (c.globalDecisions[outcome] ?? 0) + 1;
        if (decision.storeFailed) {
          rt.noteStoreFailure(this.ruleId, decision.allowed);
          if (!decision.allowed)
            return deny('EDGEGATE_RATE_LIMIT_UNAVAILABLE', p.requestId, { headers: { 'retry-after': '1' } });
        }
      }
      if (!decision.allowed) {
        c.rateLimited++;
        const t = String(decision.retryAfterS);
        return deny('EDGEGATE_RATE_LIMITED', p.requestId, {
          headers: {
            'retry-after': t,
            'ratelimit-policy': this.#ratePolicyHeader!,
            ratelimit: `${this.#ratePolicyHeader!.slice(0, this.#ratePolicyHeader!.indexOf(';'))};r=0;t=${t}`,
          },
        });
      }
    }
    let release: (() => void) | undefined;
    if (this.#maxInFlight > 0) {
      release = rt.acquire(this.ruleId, this.#maxInFlight);
      if (!release) {
        c.concurrencyLimited++;
        return deny('EDGEGATE_CONCURRENCY_LIMITED', p.requestId, { headers: { 'retry-after': '1' } });
      }
    }
    const pass: Pass = { allowed: true, strip: this.#strip, add: [], body: undefined, release };
    const denied = await this.#auth(p, pass, client);
    if (denied) {
      release?.();
      return denied;
    }
    c.passed++;
    return pass;
  }

  async #auth(p: PolicyRequest, pass: Pass, client: ClientAddress | undefined): Promise<Denial | undefined> {
    if (this.#signature) {
      const r = await this.#signature.verify(
        p.req,
        { method: p.method, path: p.path, rawPath: p.rawPath, query: p.rawQuery },
        p.requestId,
      );
      if (!r.ok) return r.denial;
      pass.body = r.body;
    }
    if (this.#jwt) {
      const r = await this.#jwt.verify(p.req, p.requestId);
      if (!r.ok) return r.denial;
      pass.add.push(...r.add);
    }
    if (this.#ext) {
      const r = await this.#ext.check(
        p.req,
        {
          method: p.method,
          uri: p.rawQuery ? `${p.path}?${p.rawQuery}` : p.path,
          host: p.host,
          proto: p.proto,
          clientAddress: client?.text ?? '',
        },
        p.requestId,
      );
      if (!r.ok) return r.denial;
      pass.add.push(...r.add);
    }
    return undefined;
  }
}

function headerKey(v: string | string[] | undefined): string {
  return v === undefined ? '' : Array.isArray(v) ? v.join(', ') : v;
}

/** Long-lived per worker: rate limiters, in-flight counts, key sets, JWKS caches and counters outlive tables. */
export class PolicyRuntime {
  readonly settings: PolicySettings;
  readonly coordinator: PolicyCoordinator;
  readonly keys: KeyStore;
  readonly guard: OverloadGuard;
  readonly globalAllow: IpMatcher | undefined;
  readonly globalDeny: IpMatcher | undefined;
  readonly hasGlobalIpRules: boolean;
  #authAgent: Dispatcher | undefined;
  readonly #limiters = new Map<string, RateLimiter>();
  #jwt = new Map<string, JwtVerifier>();
  #jwtNext = new Map<string, JwtVerifier>();
  readonly #inFlight = new Map<string, number>();
  readonly #counters = new Map<string, RuleCounters>();
  readonly #log: PolicyLog | undefined;
  /** Rule → store failures since its last log line, and when that line was written (rate-limited logging). */
  readonly #storeFailures = new Map<string, { open: number; closed: number; loggedAt: number }>();

  constructor(settings: Partial<PolicySettings>, coordinator: PolicyCoordinator, log?: PolicyLog) {
    this.settings = { ...DEFAULT_POLICY_SETTINGS, ...settings };
    this.coordinator = coordinator;
    this.#log = log;
    this.keys = new KeyStore(this.settings.secretsDir, undefined, (set, keyId, error) =>
      log?.warn('key refused', { keySet: set, keyId, error }),
    );
    this.guard = new OverloadGuard({
      delayMs: this.settings.overloadDelayMs,
      memoryBytes: this.settings.overloadMemoryBytes,
    });
    this.globalAllow = this.settings.ipAllow.length ? new IpMatcher(this.settings.ipAllow) : undefined;
    this.globalDeny = this.settings.ipDeny.length ? new IpMatcher(this.settings.ipDeny) : undefined;
    this.hasGlobalIpRules = this.globalAllow !== undefined || this.globalDeny !== undefined;
  }

  get authAgent(): Dispatcher {
    this.#authAgent ??= createAuthAgent();
    return this.#authAgent;
  }

  /**
   * Load shedding for a rule without policies, which has no gate: its priority is the default, Normal. Synchronous
   * and free while the worker is not overloaded, so rules without policies keep their fast path.
   */
  shedUngated(ruleId: string, requestId: string): Denial | undefined {
    if (!this.guard.sheds(NORMAL_RANK)) return undefined;
    this.counters(ruleId).shed++;
    return deny('EDGEGATE_OVERLOADED', requestId, {
      headers: { 'retry-after': String(this.guard.retryAfterS()) },
    });
  }

  /**
   * A Global limit decided by its failure mode (the store could not): logged at most once per rule every
   * STORE_FAILURE_LOG_MS, with the count since the last line, so a down store cannot flood the log.
   */
  noteStoreFailure(ruleId: string, admitted: boolean): void {
    let f = this.#storeFailures.get(ruleId);
    if (!f) {
      f = { open: 0, closed: 0, loggedAt: Number.NEGATIVE_INFINITY };
      this.#storeFailures.set(ruleId, f);
    }
    if (admitted) f.open++;
    else f.closed++;
    const now = performance.now();
    if (now - f.loggedAt < STORE_FAILURE_LOG_MS) return;
    this.#log?.warn('rate-limit store unavailable: the rule’s failureMode decided', {
      rule: ruleId,
      admitted: f.open,
      refused: f.closed,
    });
    f.open = 0;
    f.closed = 0;
    f.loggedAt = now;
  }

  counters(ruleId: string): RuleCounters {
    let c = this.#counters.get(ruleId);
    if (!c) {
      c = newCounters();
      this.#counters.set(ruleId, c);
    }
    return c;
  }

  /** A JWT verifier per distinct config: its JWKS cache survives table updates. */
  jwtVerifier(
    ruleId: string,
    data: PolicyData['jwt'] & object,
    onFailure: (reason: string) => void,
  ): JwtVerifier {
    const id = `${ruleId}|${JSON.stringify(data)}`;
    const fetches = this.counters(ruleId).jwksFetches;
    const v =
      this.#jwtNext.get(id) ??
      this.#jwt.get(id) ??
      new JwtVerifier(data, this.keys, onFailure, {
        agent: this.authAgent,
        onFetch: (result) => {
          fetches[result] = (fetches[result] ?? 0) + 1;
        },
      });
    this.#jwtNext.set(id, v);
    return v;
  }

  /** A slot for one more request of a rule, or undefined at the cap. Returns its release (idempotent). */
  acquire(ruleId: string, max: number): (() => void) | undefined {
    const n = this.#inFlight.get(ruleId) ?? 0;
    if (n >= max) return undefined;
    this.#inFlight.set(ruleId, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#inFlight.set(ruleId, (this.#inFlight.get(ruleId) ?? 1) - 1);
    };
  }

  /**
   * The gates of a table, by rule id. A rule without policies gets a gate only when global IP lists exist.
   * Rate limiters with an unchanged limit are kept (their leases and fallback buckets carry over).
   */
  buildGates(entries: ReadonlyArray<{ ruleId: string; policies?: PolicyData }>): Map<string, RuleGate> {
    const gates = new Map<string, RuleGate>();
    const limiters = new Map<string, RateLimiter>();
    this.#jwtNext = new Map();
    for (const e of entries) {
      if (gates.has(e.ruleId)) continue;
      const data = e.policies;
      if (!data && !this.hasGlobalIpRules) continue;
      let rate: RateLimiter | undefined;
      if (data?.rateLimit) {
        const fresh = new RateLimiter(e.ruleId, data.rateLimit, this.coordinator, this.settings.workers);
        rate = this.#limiters.get(fresh.id) ?? limiters.get(fresh.id) ?? fresh;
        limiters.set(rate.id, rate);
      }
      gates.set(e.ruleId, new RuleGate(e.ruleId, data ?? {}, this, rate));
    }
    this.#limiters.clear();
    for (const [id, l] of limiters) this.#limiters.set(id, l);
    // JWT verifiers (and their JWKS caches) of configs no rule uses any more are dropped.
    this.#jwt = this.#jwtNext;
    return gates;
  }

  stats(): PolicyRuntimeStats {
    const rules: PolicyRuntimeStats['rules'] = {};
    for (const [id, c] of this.#counters)
      rules[id] = {
        ...c,
        authFailures: { ...c.authFailures },
        jwksFetches: { ...c.jwksFetches },
        ...(c.globalDecisions ? { globalDecisions: { ...c.globalDecisions } } : {}),
        inFlight: this.#inFlight.get(id) ?? 0,
      };
    return {
      overload: {
        level: this.guard.level,
        delayMs: Math.round(this.guard.delayMs * 10) / 10,
        rssBytes: this.guard.rssBytes,
        windowsAtLevel: [...this.guard.windowsAtLevel],
      },
      rules,
      keySets: this.keys.stats(),
    };
  }

  async close(): Promise<void> {
    this.guard.close();
    await this.#authAgent?.close();
  }
}
