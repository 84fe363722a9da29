/**
 * API clients whose calls share keep-alive connections to the API server. @kubernetes/client-node 2.0.1 builds a
 * new undici Agent for every API call (KubeConfig.applySecurityAuthentication → createDispatcher), so every status
 * write, Event and Lease renewal opened a TLS connection of its own: a handshake and a new SecureContext per call,
 * most of the primary's CPU while it wrote a thousand statuses. The auth method here lets client-node
 * authenticate each call exactly as it does (headers, token files, exec plugins) and then hands the call one
 * dispatcher kept per kubeconfig — client-node's own, built from the kubeconfig's TLS material — renewed every few
 * minutes so that rotated certificate files are picked up (the old one finishes its calls and closes).
 */
import {
  createConfiguration,
  type KubeConfig,
  type RequestContext,
  type SecurityAuthentication,
  ServerConfiguration,
  setHeaderMiddleware,
} from '@kubernetes/client-node';
import type { Dispatcher } from 'undici';

/** How long one dispatcher (its TLS material and connections) serves before the next call brings a fresh one. */
export const DISPATCHER_RENEW_MS = 5 * 60_000;

class PooledAuth implements SecurityAuthentication {
  readonly #kc: KubeConfig;
  #current: { dispatcher: Dispatcher; since: number } | undefined;

  constructor(kc: KubeConfig) {
    this.#kc = kc;
  }

  getName(): string {
    return 'kubeconfig authentication, pooled connections';
  }

  async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await this.#kc.applySecurityAuthentication(context);
    const fresh = context.getDispatcher();
    // Plain HTTP without TLS options: client-node sets none, fetch's global dispatcher pools already.
    if (!fresh) return;
    const now = performance.now();
    if (!this.#current || now - this.#current.since > DISPATCHER_RENEW_MS) {
      const old = this.#current?.dispatcher;
      this.#current = { dispatcher: fresh, since: now };
      void old?.close().catch(() => {});
      return;
    }
    // The fresh one has opened nothing: dropping it costs nothing.
    context.setDispatcher(this.#current.dispatcher);
  }
}

const auths = new WeakMap<KubeConfig, PooledAuth>();

/** `kc.makeApiClient(api)`, with every call of every such client of `kc` on shared connections. */
export function pooledApiClient<T>(
  kc: KubeConfig,
  api: new (config: ReturnType<typeof createConfiguration>) => T,
): T {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('No active cluster!');
  let auth = auths.get(kc);
  if (!auth) {
    auth = new PooledAuth(kc);
    auths.set(kc, auth);
  }
  return new api(
    createConfiguration({
      baseServer: new ServerConfiguration(cluster.server, {}),
      authMethods: { default: auth },
      // The API server's audit log and metrics name the client by it.
      middleware: [setHeaderMiddleware('User-Agent', 'edgegate')],
    }),
  );
}
