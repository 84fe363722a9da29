/**
 * Certificates from the `kubernetes.io/tls` Secrets that GatewayRoutes name in `spec.tls[].secretName` and, as
 * client certificates for mTLS to upstreams, in a backend's `tls.clientCertificateRef` (in the route's own
 * namespace). Only those Secrets are read: one list+watch per referenced Secret, narrowed with
 * `fieldSelector=metadata.name=…`, started when a route names it and stopped when none does — never a
 * namespace-wide or cluster-wide Secret list. Secrets are read only in the namespaces of
 * `--tls-secret-namespaces` (the namespaces the chart grants); a Secret elsewhere is reported, not requested.
 *
 * Two outputs: the certificate bundles (to `CertManager.set('secrets', …)`, which sends them to the workers), and a
 * small per-Secret verdict (to the controller, which hands it to compile: a missing or invalid Secret makes the
 * route's ResolvedRefs False, naming the Secret). A Secret that turns bad — deleted, wrong type, bad PEM, key
 * mismatch, expired — keeps serving its last good certificate for as long as a route names it.
 */
import {
  CoreV1Api,
  type KubeConfig,
  type KubernetesObject,
  ListWatch,
  type V1Secret,
  Watch,
} from '@kubernetes/client-node';
import { type CertBundle, CertificateError, inspectCertificate } from '../../../api/certificate.ts';
import {
  type CertificateRefSnapshot,
  type CertificateRefState,
  clientCertificateNames,
} from '../../../api/certificate-refs.ts';
import type { GatewayRoute } from '../../../api/gateway-route.ts';
import type { BackoffOptions } from '../../../lib/backoff.ts';
import type { Logger } from '../../../lib/log.ts';
import { describeError, LIST_TIMEOUT_MS, withTimeout } from './kube-source.ts';
import { type InformerLike, ResilientInformer } from './resilient-informer.ts';

export const SECRET_TYPE_TLS = 'kubernetes.io/tls';

/** Builds the watch of one Secret by name. Replaceable in unit tests. */
export type SecretWatchFactory = (namespace: string, name: string) => InformerLike<KubernetesObject>;

/** One list+watch per Secret, by name (`fieldSelector=metadata.name=NAME`), in its namespace. */
export function clientNodeSecretWatches(kc: KubeConfig): SecretWatchFactory {
  const core = kc.makeApiClient(CoreV1Api);
  const watch = new Watch(kc);
  return (namespace, name) => {
    const path = `/api/v1/namespaces/${namespace}/secrets`;
    const fieldSelector = `metadata.name=${name}`;
    const list = () =>
      withTimeout(
        core.listNamespacedSecret({ namespace, fieldSelector }),
        LIST_TIMEOUT_MS,
        `list ${path}?fieldSelector=${fieldSelector}`,
      );
    return new ListWatch<KubernetesObject>(path, watch, list, false, undefined, fieldSelector);
  };
}

/** A route's certificate reference: which hostnames a Secret serves, or a backend's client certificate. */
interface TlsRef {
  secret: string;
  hostnames: string[];
  /** A client certificate for mTLS to an upstream (served to no client). */
  client?: boolean;
}

/** The spec.tls references of the valid routes, oldest route first (HTTPRoute's tie-break), then by name. */
export function certificateRefsOf(routes: readonly GatewayRoute[]): TlsRef[] {
  const found: { created: number; key: string; refs: TlsRef[] }[] = [];
  for (const route of routes) {
    const clientNames = clientCertificateNames(route);
    if ((route.spec.tls ?? []).length === 0 && clientNames.length === 0) continue;
    const ns = route.metadata.namespace ?? 'default';
    const created = Date.parse(route.metadata.creationTimestamp ?? '');
    found.push({
      created: Number.isFinite(created) ? created : 0,
      key: `${ns}/${route.metadata.name}`,
      refs: [
        ...(route.spec.tls ?? []).map((t) => ({
          secret: `${ns}/${t.secretName}`,
          hostnames: (t.hostnames && t.hostnames.length > 0 ? t.hostnames : (route.spec.hostnames ?? [])).map(
            (h) => h.toLowerCase(),
          ),
        })),
        ...clientNames.map((name) => ({
          secret: `${ns}/${name}`,
          hostnames: [],
          client: true,
        })),
      ],
    });
  }
  found.sort((a, b) => a.created - b.created || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return found.flatMap((f) => f.refs);
}

/** A Secret object → its certificate and key, or why it cannot be served. */
export function readTlsSecret(
  secret: V1Secret | undefined,
  now = Date.now(),
): { ok: true; certPem: string; keyPem: string } | { ok: false; reason: string; message: string } {
  if (!secret) return { ok: false, reason: 'NotFound', message: 'not found' };
  if (secret.type !== SECRET_TYPE_TLS)
    return {
      ok: false,
      reason: 'WrongType',
      message: `type is ${secret.type ?? '(none)'}, expected ${SECRET_TYPE_TLS}`,
    };
  const crt = secret.data?.['tls.crt'];
  const key = secret.data?.['tls.key'];
  if (!crt || !key)
    return {
      ok: false,
      reason: 'MissingKey',
      message: `data.${!crt ? 'tls.crt' : 'tls.key'} is missing or empty`,
    };
  const certPem = Buffer.from(crt, 'base64').toString('utf8');
  const keyPem = Buffer.from(key, 'base64').toString('utf8');
  try {
    inspectCertificate(certPem, keyPem, now);
  } catch (err) {
    const reason = err instanceof CertificateError ? err.reason : 'InvalidCertificate';
    return { ok: false, reason, message: (err as Error).message };
  }
  return { ok: true, certPem, keyPem };
}

export interface SecretCertSourceOptions {
  /** Namespaces whose Secrets may be read (`--tls-secret-namespaces`); empty: TLS from Secrets is off. */
  namespaces: string[];
  factory: SecretWatchFactory;
  /** Every certificate the referenced Secrets give (last good ones included). */
  onBundles: (bundles: CertBundle[]) => void;
  /** Client certificates for mTLS to upstreams, by `namespace/name` (last good ones included). */
  onClients?: (clients: Record<string, { certPem: string; keyPem: string }>) => void;
  /** Per-Secret verdicts (compile's certificateRefs). */
  onRefs: (refs: CertificateRefSnapshot) => void;
  log: Logger;
  backoff?: BackoffOptions;
  now?: () => number;
}

export interface SecretCertStats {
  /** Secrets watched now (one watch each). */
  watches: number;
  valid: number;
  invalid: number;
  /** Secret changes that gave a new certificate. */
  reloads: number;
}

export class SecretCertSource {
  readonly #opts: SecretCertSourceOptions;
  readonly #allowed: Set<string>;
  readonly #watches = new Map<string, ResilientInformer>();
  /** Last good certificate per Secret, kept while a route names the Secret. */
  readonly #good = new Map<string, { certPem: string; keyPem: string }>();
  /** Last verdict logged per Secret (log each change once). */
  readonly #logged = new Map<string, string>();
  /** Why a watch that has not listed yet keeps failing (403, API server away): reported instead of silence. */
  readonly #readErrors = new Map<string, string>();
  #refs: TlsRef[] = [];
  #scheduled = false;
  #stopped = false;
  #lastBundles = '';
  #lastClients = '';
  #lastRefs = '';
  #reloads = 0;
  #counts = { valid: 0, invalid: 0 };

  constructor(opts: SecretCertSourceOptions) {
    this.#opts = opts;
    this.#allowed = new Set(opts.namespaces);
  }

  /** The routes changed (the Kubernetes source's full snapshot): follow their Secret references. */
  setRoutes(routes: readonly GatewayRoute[]): void {
    if (this.#stopped) return;
    this.#refs = certificateRefsOf(routes);
    const wanted = new Set(this.#refs.map((r) => r.secret).filter((k) => this.#allowed.has(nsOf(k))));
    for (const [key, w] of this.#watches) {
      if (wanted.has(key)) continue;
      this.#watches.delete(key);
      this.#good.delete(key);
      this.#logged.delete(key);
      this.#readErrors.delete(key);
      void w.stop();
    }
    for (const key of wanted) {
      if (this.#watches.has(key)) continue;
      const [ns, name] = key.split('/') as [string, string];
      const w = new ResilientInformer({
        name: `secret ${key}`,
        create: () => this.#opts.factory(ns, name),
        onChange: () => {
          this.#readErrors.delete(key);
          this.#schedule();
        },
        onError: (err, delayMs) => {
          this.#opts.log.warn(`watch of Secret ${key} failed; restarting in ${delayMs} ms`, {
            error: describeError(err),
          });
          this.#readErrors.set(key, describeError(err));
          this.#schedule();
        },
        ...(this.#opts.backoff ? { backoff: this.#opts.backoff } : {}),
      });
      this.#watches.set(key, w);
      w.start();
    }
    this.#schedule();
  }

  stats(): SecretCertStats {
    return { watches: this.#watches.size, reloads: this.#reloads, ...this.#counts };
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    const all = [...this.#watches.values()];
    this.#watches.clear();
    await Promise.all(all.map((w) => w.stop()));
  }

  #schedule(): void {
    if (this.#scheduled || this.#stopped) return;
    this.#scheduled = true;
    // A relist or a burst of route changes: one evaluation.
    setImmediate(() => {
      this.#scheduled = false;
      if (!this.#stopped) this.#evaluate();
    });
  }

  #evaluate(): void {
    const now = this.#opts.now?.() ?? Date.now();
    const states: Record<string, CertificateRefState> = {};
    for (const key of [...new Set(this.#refs.map((r) => r.secret))].sort()) {
      const ns = nsOf(key);
      if (!this.#allowed.has(ns)) {
        states[key] = {
          ok: false,
          reason: 'NotPermitted',
          message:
            this.#allowed.size === 0
              ? 'TLS from Secrets is off (--tls-secret-namespaces is not set)'
              : `namespace ${ns} is not in --tls-secret-namespaces: the gateway may not read Secrets there`,
        };
        continue;
      }
      const w = this.#watches.get(key);
      if (!w?.synced) {
        // Not known yet: no verdict while the first list is under way; a failing one is reported. Either way the
        // last good certificate (if any) stays.
        const error = this.#readErrors.get(key);
        if (error) {
          states[key] = {
            ok: false,
            reason: 'ReadError',
            message: `cannot be read: ${error}`,
            ...(this.#good.has(key) ? { servingPrevious: true } : {}),
          };
          this.#logChange(key, states[key]);
        }
        continue;
      }
      const name = key.slice(ns.length + 1);
      const read = readTlsSecret(w.get(name, ns) as V1Secret | undefined, now);
      if (read.ok) {
        const prev = this.#good.get(key);
        if (!prev || prev.certPem !== read.certPem || prev.keyPem !== read.keyPem) {
          if (prev) {
            this.#reloads++;
            this.#opts.log.info('certificate Secret changed; serving the new certificate', { secret: key });
          }
          this.#good.set(key, { certPem: read.certPem, keyPem: read.keyPem });
        }
        states[key] = { ok: true };
      } else {
        states[key] = {
          ok: false,
          reason: read.reason,
          message: read.message,
          ...(this.#good.has(key) ? { servingPrevious: true } : {}),
        };
      }
      this.#logChange(key, states[key]);
    }
    this.#counts = {
      valid: Object.values(states).filter((s) => s.ok).length,
      invalid: Object.values(states).filter((s) => !s.ok).length,
    };

    const bundles: CertBundle[] = [];
    for (const r of this.#refs) {
      const good = this.#good.get(r.secret);
      if (good && r.hostnames.length > 0)
        bundles.push({ source: `secret:${r.secret}`, hostnames: r.hostnames, ...good });
    }
    const clients: Record<string, { certPem: string; keyPem: string }> = {};
    for (const r of this.#refs) {
      const good = r.client ? this.#good.get(r.secret) : undefined;
      if (good) clients[r.secret] = good;
    }
    const clientsKey = JSON.stringify(clients);
    if (clientsKey !== this.#lastClients) {
      this.#lastClients = clientsKey;
      this.#opts.onClients?.(clients);
    }
    const bundlesKey = JSON.stringify(bundles);
    if (bundlesKey !== this.#lastBundles) {
      this.#lastBundles = bundlesKey;
      this.#opts.onBundles(bundles);
    }
    const refs: CertificateRefSnapshot = { secrets: states };
    const refsKey = JSON.stringify(refs);
    if (refsKey !== this.#lastRefs) {
      this.#lastRefs = refsKey;
      this.#opts.onRefs(refs);
    }
  }

  #logChange(key: string, state: CertificateRefState): void {
    const text = JSON.stringify(state);
    const before = this.#logged.get(key);
    if (before === text) return;
    this.#logged.set(key, text);
    if (state.ok) {
      if (before !== undefined) this.#opts.log.info('certificate Secret loaded', { secret: key });
    } else
      this.#opts.log.error(
        state.servingPrevious
          ? 'certificate Secret cannot be served; its hostnames keep the previous certificate'
          : 'certificate Secret cannot be served',
        { secret: key, reason: state.reason, detail: state.message },
      );
  }
}

function nsOf(key: string): string {
  return key.slice(0, key.indexOf('/'));
}
