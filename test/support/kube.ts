/**
 * A real Kubernetes API server on loopback, the way envtest runs one: etcd plus
 * kube-apiserver with free ports, RBAC authorization, service-account signing keys and
 * a static admin token (group system:masters). No controller-manager, scheduler or
 * kubelet: objects are stored and validated, nothing reconciles them.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { binPath } from './bins.ts';
import { freePort } from './ports.ts';
import { type CommandResult, formatTail, type ManagedProcess, runCommand, startProcess } from './proc.ts';
import { logPathFor, makeTempDir, removeDir } from './tmp.ts';
import { retryOnPortClash, StopWaiting, waitFor } from './wait.ts';

/** Plain, serialisable coordinates of an API server (what global setup provides). */
export interface KubeInfo {
  /** "https://127.0.0.1:<port>" */
  url: string;
  /** Static bearer token of user "admin" in group system:masters. */
  adminToken: string;
  /** Kubeconfig using adminToken, current context "edgegate-test", namespace "default". */
  kubeconfigPath: string;
  /** PEM of the CA that signed the serving certificate (the apiserver's self-signed one). */
  caPem: string;
  /** "http://127.0.0.1:<port>" */
  etcdUrl: string;
  logPaths: { etcd: string; apiserver: string };
}

export interface KubeResponse {
  status: number;
  body: string;
  json<T = unknown>(): T;
}

export interface KubectlOptions {
  /** stdin, e.g. a manifest for `apply -f -`. */
  input?: string;
  /** Authenticate with this bearer token instead of the admin token. */
  token?: string;
  /** Return a failed result instead of throwing (default false). */
  allowFailure?: boolean;
  timeoutMs?: number;
}

/** Talks to an API server somebody started. */
export interface KubeClient extends KubeInfo {
  /** Runs the pinned, built kubectl with --kubeconfig set; throws on failure unless allowFailure. */
  kubectl(args: string[], opts?: KubectlOptions): Promise<CommandResult>;
  /** One HTTPS request to the API server, as admin unless `token` is given. */
  request(
    method: string,
    path: string,
    opts?: { body?: unknown; token?: string; contentType?: string },
  ): Promise<KubeResponse>;
  /**
   * Creates the namespace and ServiceAccount if missing, and returns a token for it
   * from the TokenRequest API (`kubectl create token`). The account has no RBAC rights
   * until a test grants some.
   */
  createServiceAccountToken(namespace: string, name: string): Promise<string>;
}

/** An API server (and its etcd) this process started and controls. */
export interface KubeServer extends KubeClient {
  /** Stops kube-apiserver (etcd keeps the data) and starts it again; waits for /readyz. */
  restart(): Promise<void>;
  /** Stops only kube-apiserver (an API outage; etcd keeps the data). */
  stopApiServer(): Promise<void>;
  /** SIGKILLs only kube-apiserver. */
  killApiServer(): Promise<void>;
  /** Starts kube-apiserver again after stopApiServer()/killApiServer(); waits for /readyz. */
  startApiServer(): Promise<void>;
  /** Stops both servers and removes their data (logs are kept). */
  stop(): Promise<void>;
  /** Last lines of both logs. */
  tail(lines?: number): string;
  info(): KubeInfo;
}

export interface StartKubeOptions {
  /** Readiness deadline for each server (default 120 s). */
  startTimeoutMs?: number;
}

function httpsCall(
  url: string,
  ca: string | undefined,
  method: string,
  path: string,
  opts: { token: string; body?: string; contentType?: string; timeoutMs?: number },
): Promise<KubeResponse> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      `${url}${path}`,
      {
        method,
        ca,
        rejectUnauthorized: ca !== undefined,
        headers: {
          Authorization: `Bearer ${opts.token}`,
          Accept: 'application/json',
          ...(opts.body !== undefined ? { 'Content-Type': opts.contentType ?? 'application/json' } : {}),
        },
        timeout: opts.timeoutMs ?? 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, body: text, json: <T>() => JSON.parse(text) as T });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timeout`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** A client for an API server somebody else started (e.g. from inject()). */
export function kubeClient(info: KubeInfo): KubeClient {
  const kubectlPath = binPath('kubectl');
  const kubectl = async (args: string[], opts: KubectlOptions = {}): Promise<CommandResult> => {
    const full = [
      '--kubeconfig',
      info.kubeconfigPath,
      ...(opts.token ? ['--token', opts.token] : []),
      ...args,
    ];
    const res = await runCommand(kubectlPath, full, {
      input: opts.input,
      timeoutMs: opts.timeoutMs ?? 60_000,
    });
    if (res.code !== 0 && !opts.allowFailure) {
      throw new Error(`kubectl ${args.join(' ')} failed (exit ${res.code}):\n${res.stderr}${res.stdout}`);
    }
    return res;
  };
  const request: KubeClient['request'] = (method, path, opts = {}) =>
    httpsCall(info.url, info.caPem, method, path, {
      token: opts.token ?? info.adminToken,
      body: opts.body === undefined || typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body),
      contentType: opts.contentType,
    });
  const ensure = async (args: string[]) => {
    const res = await kubectl(args, { allowFailure: true });
    if (res.code !== 0 && !/AlreadyExists|already exists/.test(res.stderr)) {
      throw new Error(`kubectl ${args.join(' ')} failed (exit ${res.code}):\n${res.stderr}`);
    }
  };
  return {
    ...info,
    kubectl,
    request,
    createServiceAccountToken: async (namespace, name) => {
      await ensure(['create', 'namespace', namespace]);
      await ensure(['create', 'serviceaccount', name, '-n', namespace]);
      const res = await kubectl(['create', 'token', name, '-n', namespace, '--duration=1h']);
      return res.stdout.trim();
    },
  };
}

/**
 * Waits until every CRD named is Established. Polled rather than `kubectl wait --for=condition=Established`, which
 * exits at once (".status.conditions accessor error") when a CRD just applied has no conditions yet.
 */
export async function waitCrdsEstablished(kube: KubeClient, crds: readonly string[], timeoutMs = 60_000) {
  for (const crd of crds)
    await waitFor(
      async () => {
        const r = await kube.kubectl(
          ['get', 'crd', crd, '-o', 'jsonpath={.status.conditions[?(@.type=="Established")].status}'],
          { allowFailure: true },
        );
        return r.stdout.trim() === 'True';
      },
      { timeoutMs, message: `CRD ${crd} Established` },
    );
}

/** An admin kubeconfig (context "edgegate-test", namespace "default") for an API server at `url`. */
export function kubeconfigYaml(url: string, caPem: string, token: string): string {
  const ca = Buffer.from(caPem).toString('base64');
  return `apiVersion: v1
kind: Config
clusters:
  - name: edgegate-test
    cluster:
      server: ${url}
      certificate-authority-data: ${ca}
users:
  - name: admin
    user:
      token: ${token}
contexts:
  - name: edgegate-test
    context:
      cluster: edgegate-test
      user: admin
      namespace: default
current-context: edgegate-test
`;
}

/**
 * Starts etcd and kube-apiserver on loopback; resolves when /readyz is ok and a kubeconfig
 * is written. Retries with new ports if another process took one of the chosen ports first.
 */
export function startKube(opts: StartKubeOptions = {}): Promise<KubeServer> {
  return retryOnPortClash(() => startKubeOnce(opts));
}

async function startKubeOnce(opts: StartKubeOptions): Promise<KubeServer> {
  const etcdBin = binPath('etcd');
  const apiserverBin = binPath('kube-apiserver');
  binPath('kubectl');
  const timeoutMs = opts.startTimeoutMs ?? 120_000;
  const dir = makeTempDir('kube');
  const certDir = join(dir, 'certs');
  mkdirSync(certDir, { recursive: true });
  const etcdClientPort = await freePort({ udp: false });
  const etcdPeerPort = await freePort({ udp: false });
  const securePort = await freePort({ udp: false });
  const etcdUrl = `http://127.0.0.1:${etcdClientPort}`;
  const url = `https://127.0.0.1:${securePort}`;
  const logPaths = { etcd: logPathFor('etcd'), apiserver: logPathFor('kube-apiserver') };

  // Static admin token and service-account signing keys.
  const adminToken = randomBytes(24).toString('hex');
  const tokenFile = join(dir, 'tokens.csv');
  writeFileSync(tokenFile, `${adminToken},admin,admin-uid,"system:masters"\n`);
  const { publicKey, privateKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  const saPub = join(dir, 'sa.pub');
  const saKey = join(dir, 'sa.key');
  writeFileSync(saPub, publicKey);
  writeFileSync(saKey, privateKey, { mode: 0o600 });
  const kubeconfigPath = join(dir, 'kubeconfig');

  const diagnostics = () =>
    formatTail('etcd', logPaths.etcd, 20) + formatTail('kube-apiserver', logPaths.apiserver, 40);

  const etcd = startProcess({
    name: 'etcd',
    command: etcdBin,
    logPath: logPaths.etcd,
    args: [
      '--name=default',
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
      `--initial-cluster=default=http://127.0.0.1:${etcdPeerPort}`,
      '--unsafe-no-fsync=true',
      '--log-level=warn',
    ],
  });
  let apiserver: ManagedProcess | undefined;
  const stopAll = async () => {
    await apiserver?.stop(15_000);
    await etcd.stop(15_000);
    removeDir(dir);
  };

  try {
    await waitFor(
      async () => {
        if (!etcd.running()) throw new StopWaiting('etcd exited');
        const res = await fetch(`${etcdUrl}/health`, { signal: AbortSignal.timeout(5_000) });
        return res.ok && ((await res.json()) as { health?: string }).health === 'true';
      },
      { timeoutMs, message: `etcd at ${etcdUrl} to be healthy`, diagnostics },
    );
  } catch (err) {
    await stopAll();
    throw err;
  }

  const apiserverArgs = [
    `--etcd-servers=${etcdUrl}`,
    `--cert-dir=${certDir}`,
    `--secure-port=${securePort}`,
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    '--authorization-mode=RBAC',
    `--token-auth-file=${tokenFile}`,
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    `--service-account-key-file=${saPub}`,
    `--service-account-signing-key-file=${saKey}`,
    '--service-cluster-ip-range=10.0.0.0/24',
    '--allow-privileged=true',
    '--disable-admission-plugins=ServiceAccount',
    '--enable-priority-and-fairness=false',
    // The 'kubernetes' Service endpoints reconciler refuses a loopback advertise address.
    '--endpoint-reconciler-type=none',
    '--profiling=false',
    '--v=1',
  ];
  let caPem = '';
  const startApiServer = async (): Promise<void> => {
    if (apiserver?.running()) return;
    const proc = startProcess({
      name: 'kube-apiserver',
      command: apiserverBin,
      args: apiserverArgs,
      logPath: logPaths.apiserver,
    });
    apiserver = proc;
    await waitFor(
      async () => {
        if (!proc.running()) throw new StopWaiting('kube-apiserver exited');
        const res = await httpsCall(url, undefined, 'GET', '/readyz', {
          token: adminToken,
          timeoutMs: 5_000,
        });
        return res.status === 200;
      },
      { timeoutMs, intervalMs: 200, message: `kube-apiserver at ${url} to be ready (/readyz)`, diagnostics },
    );
  };

  try {
    await startApiServer();
    // The apiserver wrote its self-signed serving certificate followed by its CA.
    const crt = join(certDir, 'apiserver.crt');
    if (!existsSync(crt)) throw new Error(`kube-apiserver did not write ${crt}`);
    caPem = readFileSync(crt, 'utf8');
    writeFileSync(kubeconfigPath, kubeconfigYaml(url, caPem, adminToken), { mode: 0o600 });
    await waitFor(
      async () =>
        (await httpsCall(url, caPem, 'GET', '/api/v1/namespaces/default', { token: adminToken })).status ===
        200,
      { timeoutMs, message: 'namespace "default" to exist', diagnostics },
    );
  } catch (err) {
    await stopAll();
    throw err;
  }

  const info: KubeInfo = { url, adminToken, kubeconfigPath, caPem, etcdUrl, logPaths };
  const client = kubeClient(info);
  return {
    ...client,
    restart: async () => {
      await apiserver?.stop(15_000);
      await startApiServer();
    },
    stopApiServer: async () => {
      await apiserver?.stop(15_000);
    },
    killApiServer: async () => {
      await apiserver?.kill();
    },
    startApiServer,
    stop: stopAll,
    tail: (lines = 50) =>
      formatTail('etcd', logPaths.etcd, lines) + formatTail('kube-apiserver', logPaths.apiserver, lines),
    info: () => ({ ...info, logPaths: { ...logPaths } }),
  };
}
