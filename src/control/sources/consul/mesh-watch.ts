/**
 * The gateway's side of Consul service mesh (Connect), for the Consul source: its identity and its intention
 * decisions.
 * - Identity: blocking watches on the local agent's `/v1/agent/connect/ca/roots` and
 *   `/v1/agent/connect/ca/leaf/<gateway service>`; every change (a renewed leaf, a CA rotation) is handed on as a
 *   whole MeshIdentity, which reaches the workers in the certificate set (never the table: it holds a key).
 * - Intentions: per mesh destination service, a blocking watch on `/v1/connect/intentions/match?by=destination`;
 *   each change (and every INTENTION_RECHECK_MS, for changes no intention index shows: the default policy) asks
 *   `/v1/connect/intentions/check?source=<gateway>&destination=<service>`, which the servers answer with Consul's
 *   own precedence, wildcard and default-policy rules. The reason is the first intention of the match list (in
 *   Consul's precedence order) whose source is the gateway or `*`, or the default policy when none is.
 *   Not `/v1/agent/connect/authorize`: on Consul 1.22 the agent's cache behind it keeps denying after the last
 *   intention of a destination is deleted (it answered "Matched L4 intention … DENY" minutes after the delete,
 *   while check and match had moved on). The decision is a fact of the catalog snapshot.
 */
import type { MeshIdentity } from '../../../api/certificate.ts';
import { backoffDelay } from '../../../lib/backoff.ts';
import type { BlockingQuery } from './blocking-query.ts';
import type { ConsulHttp } from './consul-http.ts';

/** Decisions are re-asked this often even when no intention changed (default policy, ACL changes). */
export const INTENTION_RECHECK_MS = 30_000;

/**
 * After an intention change the decision is asked again after these delays: a secondary datacenter's servers
 * replicate intentions from the primary and may answer a moment behind the change that woke the watch.
 */
export const INTENTION_FOLLOW_UPS_MS = [250, 1_000, 3_000];

export type WatchFactory = (
  key: string,
  path: string,
  query: Record<string, string>,
  pollMs: number,
  onData: (body: unknown) => void,
) => BlockingQuery;

export interface MeshLog {
  info(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
}

export interface MeshWatchOptions {
  gatewayService: string;
  /** Consul namespace of the gateway (CONSUL_NAMESPACE; default `default`). */
  namespace?: string | undefined;
  http: ConsulHttp;
  watch: WatchFactory;
  log: MeshLog;
  /** A new identity (leaf or roots changed). */
  onIdentity: (identity: MeshIdentity) => void;
  /** An intention decision changed: the source reports a new snapshot. */
  onDecision: () => void;
  backoffBaseMs: number;
  backoffMaxMs: number;
  timeoutMs?: number;
}

interface Roots {
  trustDomain: string;
  activeRootId: string;
  pems: string[];
}

interface Leaf {
  certPem: string;
  keyPem: string;
  serial: string;
  uri: string;
}

interface Destination {
  watch: BlockingQuery;
  decision: { allowed: boolean; reason: string } | undefined;
  /** Bumped by every check started: an older answer never overwrites a newer one. */
  seq: number;
  failures: number;
  timer: NodeJS.Timeout | undefined;
  followUps: NodeJS.Timeout[];
  /** The latest match list for the destination (precedence order): where a decision's reason comes from. */
  intentions: Intention[];
}

interface Intention {
  SourceNS?: string;
  SourceName?: string;
  SourcePeer?: string;
  Action?: string;
  Precedence?: number;
  Permissions?: unknown[] | null;
}

function intentionList(body: unknown, svc: string): Intention[] {
  const list = (body as Record<string, unknown> | null)?.[svc];
  return Array.isArray(list) ? (list as Intention[]) : [];
}

function parseRoots(body: unknown): Roots {
  const b = body as {
    ActiveRootID?: unknown;
    TrustDomain?: unknown;
    Roots?: { RootCert?: unknown; IntermediateCerts?: unknown }[] | null;
  } | null;
  if (!b || typeof b.TrustDomain !== 'string' || b.TrustDomain === '' || !Array.isArray(b.Roots))
    throw new TypeError('expected TrustDomain and Roots (is Connect enabled on the agent?)');
  const pems: string[] = [];
  for (const r of b.Roots) {
    if (typeof r?.RootCert === 'string') pems.push(r.RootCert.trim());
    if (Array.isArray(r?.IntermediateCerts))
      for (const i of r.IntermediateCerts) if (typeof i === 'string') pems.push(i.trim());
  }
  if (pems.length === 0) throw new TypeError('no CA root certificate');
  return { trustDomain: b.TrustDomain, activeRootId: String(b.ActiveRootID ?? ''), pems };
}

function parseLeaf(body: unknown): Leaf {
  const b = body as {
    CertPEM?: unknown;
    PrivateKeyPEM?: unknown;
    SerialNumber?: unknown;
    ServiceURI?: unknown;
  } | null;
  if (
    !b ||
    typeof b.CertPEM !== 'string' ||
    typeof b.PrivateKeyPEM !== 'string' ||
    typeof b.ServiceURI !== 'string'
  )
    throw new TypeError('expected CertPEM, PrivateKeyPEM and ServiceURI');
  return {
    certPem: b.CertPEM,
    keyPem: b.PrivateKeyPEM,
    serial: String(b.SerialNumber ?? ''),
    uri: b.ServiceURI,
  };
}

export class MeshWatch {
  readonly #o: MeshWatchOptions;
  readonly #destinations = new Map<string, Destination>();
  #roots: Roots | undefined;
  #leaf: Leaf | undefined;
  #rootsWatch: BlockingQuery | undefined;
  #leafWatch: BlockingQuery | undefined;
  #recheck: NodeJS.Timeout | undefined;
  readonly #abort = new AbortController();
  #checkErrors = 0;

  constructor(opts: MeshWatchOptions) {
    this.#o = opts;
  }

  get gatewayService(): string {
    return this.#o.gatewayService;
  }

  start(): void {
    this.#rootsWatch = this.#o.watch('mesh@roots', '/v1/agent/connect/ca/roots', {}, 1000, (body) => {
      this.#roots = parseRoots(body);
      this.#identity();
    });
    this.#leafWatch = this.#o.watch(
      'mesh@leaf',
      `/v1/agent/connect/ca/leaf/${encodeURIComponent(this.#o.gatewayService)}`,
      {},
      1000,
      (body) => {
        this.#leaf = parseLeaf(body);
        this.#identity();
      },
    );
    this.#recheck = setInterval(() => {
      for (const svc of this.#destinations.keys()) this.#check(svc);
    }, INTENTION_RECHECK_MS);
    this.#recheck.unref();
  }

  /** The mesh destination services the routes name (their intentions are watched). */
  setDestinations(services: Iterable<string>): void {
    const wanted = new Set(services);
    for (const [svc, d] of this.#destinations) {
      if (wanted.has(svc)) continue;
      void d.watch.stop();
      clearTimeout(d.timer);
      for (const t of d.followUps) clearTimeout(t);
      this.#destinations.delete(svc);
    }
    for (const svc of wanted) {
      if (this.#destinations.has(svc)) continue;
      const d: Destination = {
        watch: undefined as unknown as BlockingQuery,
        decision: undefined,
        seq: 0,
        failures: 0,
        timer: undefined,
        followUps: [],
        intentions: [],
      };
      this.#destinations.set(svc, d);
      d.watch = this.#o.watch(
        `intentions@${svc}`,
        '/v1/connect/intentions/match',
        { by: 'destination', name: svc },
        1000,
        (body) => {
          d.intentions = intentionList(body, svc);
          this.#changed(svc, d);
        },
      );
    }
  }

  /** What has not answered yet (the first report waits for it, like every other watch). */
  pending(): string[] {
    const out: string[] = [];
    if (!this.#roots) out.push('mesh@roots');
    if (!this.#leaf) out.push('mesh@leaf');
    for (const [svc, d] of this.#destinations) if (!d.decision) out.push(`intentions@${svc}`);
    return out;
  }

  /** Intention decisions known so far, by destination service. */
  decisions(): Record<string, { allowed: boolean; reason: string }> {
    const out: Record<string, { allowed: boolean; reason: string }> = {};
    for (const svc of [...this.#destinations.keys()].sort()) {
      const d = this.#destinations.get(svc)!.decision;
      if (d) out[svc] = { ...d };
    }
    return out;
  }

  stats(): Record<string, unknown> {
    return {
      gatewayService: this.#o.gatewayService,
      trustDomain: this.#roots?.trustDomain,
      activeRootId: this.#roots?.activeRootId,
      roots: this.#roots?.pems.length ?? 0,
      leafSerial: this.#leaf?.serial,
      checkErrors: this.#checkErrors,
      intentions: this.decisions(),
    };
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    clearInterval(this.#recheck);
    const all = [this.#rootsWatch, this.#leafWatch];
    for (const d of this.#destinations.values()) {
      clearTimeout(d.timer);
      for (const t of d.followUps) clearTimeout(t);
      all.push(d.watch);
    }
    await Promise.all(all.map((w) => w?.stop()));
  }

  #identity(): void {
    const r = this.#roots;
    const l = this.#leaf;
    if (!r || !l) return;
    this.#o.onIdentity({
      certPem: l.certPem,
      keyPem: l.keyPem,
      rootsPem: r.pems,
      trustDomain: r.trustDomain,
      activeRootId: r.activeRootId,
      leafSerial: l.serial,
    });
  }

  /** Why: the first intention (precedence order) whose source is the gateway or `*`; else the default policy. */
  #reason(d: Destination, svc: string, allowed: boolean): string {
    const gw = this.#o.gatewayService;
    const ns = this.#o.namespace ?? 'default';
    const hit = d.intentions.find(
      (i) =>
        !i.SourcePeer &&
        (i.SourceName === gw || i.SourceName === '*') &&
        (i.SourceNS === undefined || i.SourceNS === '' || i.SourceNS === ns || i.SourceNS === '*'),
    );
    if (!hit) return `no intention matches; the default intention policy ${allowed ? 'allows' : 'denies'}`;
    const kind = hit.Permissions && hit.Permissions.length > 0 ? 'L7' : 'L4';
    return `matched ${kind} intention ${hit.SourceNS ?? ns}/${hit.SourceName} → ${ns}/${svc} (precedence ${hit.Precedence ?? '?'}, action ${hit.Action || (kind === 'L7' ? 'per-request permissions' : '?')})`;
  }

  /** The intentions of `svc` changed: ask now, and again after the agent's cache has caught up. */
  #changed(svc: string, d: Destination): void {
    for (const t of d.followUps) clearTimeout(t);
    this.#check(svc);
    d.followUps = INTENTION_FOLLOW_UPS_MS.map((ms) => {
      const t = setTimeout(() => this.#check(svc), ms);
      t.unref();
      return t;
    });
  }

  /** Asks Consul whether the gateway may connect to `svc`; a failure keeps the last decision and retries. */
  #check(svc: string): void {
    const d = this.#destinations.get(svc);
    if (!d || this.#abort.signal.aborted) return;
    clearTimeout(d.timer);
    d.timer = undefined;
    const seq = ++d.seq;
    this.#o.http
      .get(
        '/v1/connect/intentions/check',
        { ...this.#o.http.commonQuery(), stale: undefined, source: this.#o.gatewayService, destination: svc },
        { signal: this.#abort.signal, timeoutMs: this.#o.timeoutMs ?? 10_000 },
      )
      .then((res) => {
        if (res.status !== 200) throw new Error(`${res.status} ${res.text.slice(0, 200)}`);
        const b = res.body as { Allowed?: unknown } | null;
        if (typeof b?.Allowed !== 'boolean') throw new Error('no Allowed in the answer');
        return { allowed: b.Allowed, reason: this.#reason(d, svc, b.Allowed) };
      })
      .then(
        (decision) => {
          if (seq !== d.seq || this.#destinations.get(svc) !== d) return;
          d.failures = 0;
          const prev = d.decision;
          if (prev && prev.allowed === decision.allowed && prev.reason === decision.reason) return;
          d.decision = decision;
          this.#o.log.info(
            `consul mesh: ${this.#o.gatewayService} → ${svc} ${decision.allowed ? 'allowed' : 'DENIED'} by intentions`,
            { reason: decision.reason },
          );
          this.#o.onDecision();
        },
        (err: Error) => {
          if (this.#abort.signal.aborted || seq !== d.seq || this.#destinations.get(svc) !== d) return;
          this.#checkErrors++;
          d.failures++;
          if (d.failures === 1)
            this.#o.log.warn(
              `consul mesh: /v1/connect/intentions/check for ${svc} failed: ${err.message}; keeping the last decision and retrying`,
            );
          d.timer = setTimeout(
            () => this.#check(svc),
            backoffDelay(d.failures, { baseMs: this.#o.backoffBaseMs, maxMs: this.#o.backoffMaxMs }),
          );
        },
      );
  }
}
