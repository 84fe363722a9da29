/**
 * One real single-node Kubernetes for the test run, the way an edge node runs edgegate: etcd, kube-apiserver,
 * kube-controller-manager, kube-scheduler, kubelet and containerd (runc, the CNI bridge and portmap plugins) in a
 * network + mount namespace of their own (test/support/node-sandbox.ts), joined to the host by a veth pair on a
 * documentation range; a Consul agent on the node IP, where the chart's default looks for it; the images
 * (gateway from the project's Dockerfile, pause, a test backend) built locally by scripts/node-images.sh and
 * imported into containerd. Started once per run by global setup when a selected file calls sharedNode(), used
 * from the host through the node IP (test/support/node-client.ts). See test/support/README.md for the
 * workarounds this environment needs and why.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { binPath, REPO_ROOT } from './bins.ts';
import { type KubeInfo, kubeClient, kubeconfigYaml } from './kube.ts';
import { createSandbox, processStart, sweepStaleSandboxes } from './node-sandbox.ts';
import { formatTail, type ManagedProcess, runCommand } from './proc.ts';
import { logPathFor } from './tmp.ts';
import { StopWaiting, waitFor } from './wait.ts';

/** The node's fixed addresses inside its namespace (they are private to it, so fixed is fine). */
export const NODE_NAME = 'edgegate-node';
export const POD_CIDR = '10.244.0.0/24';
export const SERVICE_CIDR = '10.0.0.0/24';
/** The `kubernetes` Service's ClusterIP: on the node's lo, DNATed to the API server (there is no kube-proxy). */
export const KUBERNETES_SERVICE_IP = '10.0.0.1';
export const APISERVER_PORT = 6443;
export const CONSUL_HTTP_PORT = 8500;

export interface NodeImage {
  /** Full reference, e.g. edgegate.local/edgegate:<hash>. */
  ref: string;
  repository: string;
  tag: string;
}

/** Plain, serialisable coordinates of the node (what global setup provides). */
export interface NodeInfo {
  name: string;
  /** The node's InternalIP (its end of the veth); every test reaches the node through it. */
  nodeIp: string;
  /** The host's end of the veth. */
  hostIp: string;
  /** The node's API server, https://<nodeIp>:6443, with an admin token and kubeconfig. */
  kube: KubeInfo;
  /** The node-local Consul agent, http://<nodeIp>:8500. */
  consulUrl: string;
  images: {
    gateway: NodeImage;
    /** The same gateway image under a second tag, for upgrade tests. */
    gatewayNextTag: NodeImage;
    backend: NodeImage;
    pause: NodeImage;
  };
  /** For processes a test runs inside the node (nsenter): the namespace holder and the cgroup procs files. */
  holderPid: number;
  cgroupProcs: string;
  /** HTTP over this unix socket: leases and node actions (node-client.ts). */
  controlSocket: string;
  dir: string;
  logPaths: Record<string, string>;
  /** Where the start-up time went (ms): images, boot (to node Ready), import, total. */
  timings: Record<string, number>;
}

export interface RealNode {
  info: NodeInfo;
  stop(): Promise<string[]>;
}

export interface NodeImages {
  base: { ref: string; archive: string; node: string };
  gateway: { ref: string; archive: string };
  pause: { ref: string; archive: string };
  backend: { ref: string; archive: string };
}

function image(ref: string): NodeImage {
  const i = ref.lastIndexOf(':');
  return { ref, repository: ref.slice(0, i), tag: ref.slice(i + 1) };
}

/** Builds (or finds cached) the node's images: scripts/node-images.sh. */
export async function buildNodeImages(): Promise<NodeImages> {
  const res = await runCommand('bash', [join(REPO_ROOT, 'scripts', 'node-images.sh')], {
    timeoutMs: 40 * 60_000,
  });
  if (res.code !== 0)
    throw new Error(
      `scripts/node-images.sh failed (exit ${res.code}):\n${res.stderr.split('\n').slice(-30).join('\n')}`,
    );
  return JSON.parse(res.stdout) as NodeImages;
}

/** Values the kubelet sets machine-wide at start; the node shows it these, so it never writes the host's. */
const KERNEL_DEFAULTS: Record<string, string> = {
  'vm/overcommit_memory': '1',
  'vm/panic_on_oom': '0',
  'kernel/panic': '10',
  'kernel/panic_on_oops': '1',
  'kernel/keys/root_maxkeys': '1000000',
  'kernel/keys/root_maxbytes': '25000000',
};

function yaml(obj: unknown): string {
  return JSON.stringify(obj, null, 2); // JSON is YAML; the kubelet and kubeconfig readers take it
}

/** Starts the node; throws with the reason (and log tails) if it cannot. */
export async function startNode(): Promise<RealNode> {
  const timings: Record<string, number> = {};
  const t0 = Date.now();
  const bins = {
    etcd: binPath('etcd'),
    apiserver: binPath('kube-apiserver'),
    controllerManager: binPath('kube-controller-manager'),
    scheduler: binPath('kube-scheduler'),
    kubelet: binPath('kubelet'),
    containerd: binPath('containerd'),
    shim: binPath('containerd-shim-runc-v2'),
    ctr: binPath('ctr'),
    consul: binPath('consul'),
  };
  for (const [tool, path] of [
    ['runc', '/usr/sbin/runc'],
    ['the CNI plugins', '/usr/lib/cni/bridge'],
    ['iptables', '/usr/sbin/iptables'],
  ] as const) {
    if (!existsSync(path)) throw new Error(`${tool} (${path}) is missing: run 'bash scripts/test-deps.sh'`);
  }

  const stale = await sweepStaleSandboxes();
  if (stale.length > 0)
    console.warn(`[node] removed what earlier runs left behind:\n  ${stale.join('\n  ')}`);

  // The images build while the node boots.
  const imagesStarted = Date.now();
  const imagesPromise = buildNodeImages().then((i) => {
    timings.images = Date.now() - imagesStarted;
    return i;
  });
  imagesPromise.catch(() => {}); // awaited below

  const sandbox = await createSandbox({ name: 'node' });
  const { dir, nodeIp } = sandbox;
  const procs: ManagedProcess[] = [];
  const logPaths: Record<string, string> = {};
  let control: Server | undefined;
  const stopAll = async (): Promise<string[]> => {
    await new Promise<void>((resolve) => (control ? control.close(() => resolve()) : resolve()));
    // Managed processes first (so they are not reported as dying unexpectedly), then everything in the cgroups.
    await Promise.all(procs.map((p) => p.kill()));
    return sandbox.destroy();
  };
  const diagnostics = () =>
    Object.entries(logPaths)
      .map(([name, path]) => formatTail(name, path, 25))
      .join('');

  try {
    const startIn = (
      name: string,
      command: string,
      args: string[],
      env?: NodeJS.ProcessEnv,
      cgroup?: string,
    ) => {
      const logPath = logPathFor(`node-${name}`);
      logPaths[name] = logPath;
      const p = sandbox.start({ name: `node-${name}`, command, args, logPath, env, cwd: dir, cgroup });
      procs.push(p);
      return p;
    };
    const paths = {
      pki: join(dir, 'pki'),
      certs: join(dir, 'pki', 'apiserver'),
      etcd: join(dir, 'etcd'),
      kubelet: join(dir, 'kubelet'),
      podLogs: join(dir, 'pod-logs'),
      plugins: join(dir, 'volume-plugins'),
      containerd: join(dir, 'containerd'),
      cniConf: join(dir, 'cni', 'net.d'),
      cniIpam: join(dir, 'cni', 'ipam'),
      bin: join(dir, 'bin'),
      sysctl: join(dir, 'sysctl'),
      socket: join(dir, 'containerd.sock'),
      kubeconfig: join(dir, 'kubeconfig'),
    };
    for (const p of Object.values(paths))
      if (!p.endsWith('.sock') && !p.endsWith('kubeconfig')) mkdirSync(p, { recursive: true });

    // --- the mount namespace: private /run and /var/log; the kubelet's kernel settings shown, never written.
    await sandbox.must('mount', ['-t', 'tmpfs', '-o', 'mode=0755', 'edgegate-node-run', '/run']);
    await sandbox.must('mount', ['-t', 'tmpfs', '-o', 'mode=0755', 'edgegate-node-log', '/var/log']);
    for (const [key, value] of Object.entries(KERNEL_DEFAULTS)) {
      const file = join(paths.sysctl, key.replaceAll('/', '.'));
      writeFileSync(file, `${value}\n`);
      await sandbox.must('mount', ['--bind', file, `/proc/sys/${key}`]);
    }
    // --- the network namespace: the Service IP of `kubernetes` on lo, DNATed to the API server.
    await sandbox.must('ip', ['addr', 'add', `${KUBERNETES_SERVICE_IP}/32`, 'dev', 'lo']);
    await sandbox.must('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);
    // What an edge node running host-network gateways should set (docs/install-kubernetes.md): when the old pod's
    // SO_REUSEPORT listener closes during a rollout, connections still in its accept queue move to the new pod's
    // listener instead of being reset (without it the upgrade test saw one reset in six rollouts).
    await sandbox.must('sysctl', ['-q', '-w', 'net.ipv4.tcp_migrate_req=1']);
    for (const chain of ['OUTPUT', 'PREROUTING'])
      await sandbox.must('iptables', [
        '-w',
        '-t',
        'nat',
        '-A',
        chain,
        '-d',
        `${KUBERNETES_SERVICE_IP}/32`,
        '-p',
        'tcp',
        '--dport',
        '443',
        '-j',
        'DNAT',
        '--to-destination',
        `${nodeIp}:${APISERVER_PORT}`,
      ]);

    // --- etcd + kube-apiserver (on the node IP)
    const adminToken = randomBytes(24).toString('hex');
    writeFileSync(join(paths.pki, 'tokens.csv'), `${adminToken},admin,admin-uid,"system:masters"\n`);
    const { publicKey, privateKey } = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    });
    writeFileSync(join(paths.pki, 'sa.pub'), publicKey);
    writeFileSync(join(paths.pki, 'sa.key'), privateKey, { mode: 0o600 });
    startIn('etcd', bins.etcd, [
      '--name=node',
      `--data-dir=${paths.etcd}`,
      '--listen-client-urls=http://127.0.0.1:2379',
      '--advertise-client-urls=http://127.0.0.1:2379',
      '--listen-peer-urls=http://127.0.0.1:2380',
      '--initial-advertise-peer-urls=http://127.0.0.1:2380',
      '--initial-cluster=node=http://127.0.0.1:2380',
      '--unsafe-no-fsync=true',
      '--log-level=warn',
    ]);
    const apiserverArgs = [
      '--etcd-servers=http://127.0.0.1:2379',
      `--cert-dir=${paths.certs}`,
      `--secure-port=${APISERVER_PORT}`,
      `--bind-address=${nodeIp}`,
      `--advertise-address=${nodeIp}`,
      '--authorization-mode=RBAC',
      `--token-auth-file=${join(paths.pki, 'tokens.csv')}`,
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${join(paths.pki, 'sa.pub')}`,
      `--service-account-signing-key-file=${join(paths.pki, 'sa.key')}`,
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
      '--allow-privileged=true',
      '--enable-priority-and-fairness=false',
      // The API server reaches the kubelet (logs, exec, port-forward) at the node IP, not by hostname.
      '--kubelet-preferred-address-types=InternalIP',
      '--profiling=false',
      '--v=1',
    ];
    const url = `https://${nodeIp}:${APISERVER_PORT}`;
    let apiserver = startIn('kube-apiserver', bins.apiserver, apiserverArgs);
    const apiserverReady = async (timeoutMs: number) => {
      const proc = apiserver;
      await waitFor(
        async () => {
          if (!proc.running()) throw new StopWaiting('kube-apiserver exited');
          const res = await fetchInsecure(`${url}/readyz`, adminToken);
          return res === 200;
        },
        { timeoutMs, intervalMs: 200, message: `the node's kube-apiserver at ${url}/readyz`, diagnostics },
      );
    };
    await apiserverReady(120_000);
    const caPem = readFileSync(join(paths.certs, 'apiserver.crt'), 'utf8');
    writeFileSync(paths.kubeconfig, kubeconfigYaml(url, caPem, adminToken), { mode: 0o600 });
    const kube: KubeInfo = {
      url,
      adminToken,
      kubeconfigPath: paths.kubeconfig,
      caPem,
      etcdUrl: 'http://127.0.0.1:2379 (inside the node)',
      logPaths: { etcd: logPaths.etcd!, apiserver: logPaths['kube-apiserver']! },
    };
    const client = kubeClient(kube);

    // --- controller-manager, scheduler (the admin kubeconfig: this node has no other identities)
    startIn('kube-controller-manager', bins.controllerManager, [
      `--kubeconfig=${paths.kubeconfig}`,
      `--root-ca-file=${join(paths.certs, 'apiserver.crt')}`,
      `--service-account-private-key-file=${join(paths.pki, 'sa.key')}`,
      '--leader-elect=false',
      '--bind-address=127.0.0.1',
      '--use-service-account-credentials=false',
      '--allocate-node-cidrs=false',
      `--flex-volume-plugin-dir=${paths.plugins}`,
      '--v=1',
    ]);
    startIn('kube-scheduler', bins.scheduler, [
      `--kubeconfig=${paths.kubeconfig}`,
      '--leader-elect=false',
      '--bind-address=127.0.0.1',
      '--v=1',
    ]);

    // --- containerd (+ runc, CNI)
    const pauseRefPromise = imagesPromise.then((i) => i.pause.ref);
    symlinkSync(bins.shim, join(paths.bin, 'containerd-shim-runc-v2'));
    writeFileSync(
      join(paths.cniConf, '10-edgegate-node.conflist'),
      JSON.stringify(
        {
          cniVersion: '1.0.0',
          name: 'edgegate-node',
          plugins: [
            {
              type: 'bridge',
              bridge: 'cni0',
              isGateway: true,
              ipMasq: false,
              hairpinMode: true,
              ipam: {
                type: 'host-local',
                ranges: [[{ subnet: POD_CIDR }]],
                routes: [{ dst: '0.0.0.0/0' }],
                dataDir: paths.cniIpam,
              },
            },
            { type: 'portmap', capabilities: { portMappings: true } },
          ],
        },
        null,
        2,
      ),
    );
    const containerdConfig = join(dir, 'containerd.toml');
    const writeContainerdConfig = (pauseRef: string) =>
      writeFileSync(
        containerdConfig,
        `version = 3
root = "${paths.containerd}"
state = "/run/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "${paths.socket}"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "${pauseRef}"

[plugins."io.containerd.cri.v1.runtime"]
  # No CAP_SYS_RESOURCE here: runc cannot give a container a lower oom_score_adj than containerd's own.
  restrict_oom_score_adj = true
  enable_unprivileged_ports = true
  enable_unprivileged_icmp = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "${paths.cniConf}"

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
`,
      );
    const containerdEnv = {
      ...process.env,
      PATH: `${paths.bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
    };
    let containerd: ManagedProcess | undefined;
    // containerd in a cgroup of its own: the shims it starts stay there, so a runtime restart finds them.
    sandbox.ensureCgroup('runtime');
    const startContainerd = async () => {
      containerd = startIn(
        'containerd',
        bins.containerd,
        ['--config', containerdConfig],
        containerdEnv,
        'runtime',
      );
      const proc = containerd;
      await waitFor(
        async () => {
          if (!proc.running()) throw new StopWaiting('containerd exited');
          const r = await sandbox.run(bins.ctr, ['--address', paths.socket, 'version'], {
            timeoutMs: 10_000,
          });
          return r.code === 0;
        },
        { timeoutMs: 60_000, intervalMs: 200, message: 'containerd to answer', diagnostics },
      );
    };
    writeContainerdConfig(await pauseRefPromise);
    await startContainerd();

    // --- kubelet
    const kubeletConfig = join(dir, 'kubelet.yaml');
    writeFileSync(
      kubeletConfig,
      yaml({
        apiVersion: 'kubelet.config.k8s.io/v1beta1',
        kind: 'KubeletConfiguration',
        address: nodeIp,
        port: 10250,
        readOnlyPort: 0,
        healthzBindAddress: '127.0.0.1',
        healthzPort: 10248,
        // The API server's port-forward/logs reach it; nothing else can (the veth ends at the host).
        authentication: { anonymous: { enabled: true }, webhook: { enabled: false } },
        authorization: { mode: 'AlwaysAllow' },
        // cgroup v1 and no systemd as PID 1: cgroupfs, in the sandbox's own cgroup.
        failCgroupV1: false,
        cgroupDriver: 'cgroupfs',
        cgroupRoot: `/${sandbox.record.cgroup}`,
        containerRuntimeEndpoint: `unix://${paths.socket}`,
        imageServiceEndpoint: `unix://${paths.socket}`,
        podLogsDir: paths.podLogs,
        volumePluginDir: paths.plugins,
        // Fail rather than write a machine-wide setting (the mount namespace shows it the values it wants).
        protectKernelDefaults: true,
        // Lowering its own oom_score_adj needs CAP_SYS_RESOURCE, which no process here has.
        oomScoreAdj: 0,
        failSwapOn: false,
        resolvConf: '/etc/resolv.conf',
        clusterDomain: 'cluster.local',
        maxPods: 40,
        registerNode: true,
        serializeImagePulls: false,
        // The images are imported once per run; nothing may garbage-collect them, and a shared machine's disk
        // or memory use must not evict the tests' pods.
        imageGCHighThresholdPercent: 100,
        imageGCLowThresholdPercent: 99,
        evictionHard: {
          'memory.available': '50Mi',
          'nodefs.available': '1%',
          'imagefs.available': '1%',
          'nodefs.inodesFree': '1%',
        },
        nodeStatusUpdateFrequency: '2s',
        syncFrequency: '10s',
      }),
    );
    const bootStarted = Date.now();
    startIn('kubelet', bins.kubelet, [
      `--config=${kubeletConfig}`,
      `--kubeconfig=${paths.kubeconfig}`,
      `--root-dir=${paths.kubelet}`,
      `--node-ip=${nodeIp}`,
      `--hostname-override=${NODE_NAME}`,
      '--v=1',
    ]);

    // --- the node-local Consul agent on the node IP (the chart's default CONSUL_HTTP_ADDR)
    startIn('consul', bins.consul, [
      'agent',
      '-dev',
      '-datacenter=dc1',
      `-node=${NODE_NAME}`,
      `-bind=${nodeIp}`,
      `-advertise=${nodeIp}`,
      `-client=${nodeIp}`,
      `-http-port=${CONSUL_HTTP_PORT}`,
      '-log-level=info',
    ]);
    const consulUrl = `http://${nodeIp}:${CONSUL_HTTP_PORT}`;

    // --- images into containerd, while the kubelet registers the node
    const images = await imagesPromise;
    const importStarted = Date.now();
    for (const img of [images.pause, images.backend, images.gateway]) {
      const r = await sandbox.run(
        bins.ctr,
        ['--address', paths.socket, '-n', 'k8s.io', 'images', 'import', '--no-unpack=false', img.archive],
        { timeoutMs: 10 * 60_000 },
      );
      if (r.code !== 0) throw new Error(`ctr images import ${img.archive} failed: ${r.stderr}${r.stdout}`);
    }
    const gateway = image(images.gateway.ref);
    const gatewayNextTag = image(`${gateway.repository}:${gateway.tag}-next`);
    await sandbox.must(bins.ctr, [
      '--address',
      paths.socket,
      '-n',
      'k8s.io',
      'images',
      'tag',
      '--force',
      gateway.ref,
      gatewayNextTag.ref,
    ]);
    timings.import = Date.now() - importStarted;

    await waitFor(
      async () => {
        const r = await client.kubectl(
          ['get', 'node', NODE_NAME, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'],
          {
            allowFailure: true,
          },
        );
        return r.stdout.trim() === 'True';
      },
      { timeoutMs: 180_000, intervalMs: 500, message: `node ${NODE_NAME} to be Ready`, diagnostics },
    );
    timings.boot = Date.now() - bootStarted;
    // Pods need their namespace's ServiceAccount and the root CA ConfigMap (controller-manager makes both).
    await waitFor(
      async () =>
        (
          await client.kubectl(
            ['get', 'serviceaccount/default', 'configmap/kube-root-ca.crt', '-n', 'default'],
            {
              allowFailure: true,
            },
          )
        ).code === 0,
      {
        timeoutMs: 60_000,
        intervalMs: 500,
        message: 'the default ServiceAccount and kube-root-ca.crt',
        diagnostics,
      },
    );
    await waitFor(
      async () => {
        const res = await fetch(`${consulUrl}/v1/status/leader`, { signal: AbortSignal.timeout(5_000) });
        return res.ok && ((await res.json()) as string) !== '';
      },
      {
        timeoutMs: 60_000,
        message: `the node's Consul agent at ${consulUrl}`,
        diagnostics,
      },
    );

    // --- the control socket: leases for exclusive use, and the node actions tests need.
    const controlSocket = join(dir, 'control.sock');
    let lease: { id: string; pid: number; holder: string } | undefined;
    // Each waiter grants the lease to its request and returns true, or returns false if its client has gone.
    const waiters: Array<() => boolean> = [];
    const releaseLease = () => {
      lease = undefined;
      while (waiters.length > 0 && !waiters.shift()!()) {
        // that one gave up waiting: the next
      }
    };
    const leaseWatch = setInterval(() => {
      if (lease && processStart(lease.pid) === undefined) releaseLease(); // its test process died
    }, 1_000);
    leaseWatch.unref();
    const actions: Record<string, () => Promise<unknown>> = {
      'stop-apiserver': async () => {
        await apiserver.stop(15_000);
      },
      'start-apiserver': async () => {
        if (!apiserver.running()) apiserver = startIn('kube-apiserver', bins.apiserver, apiserverArgs);
        await apiserverReady(120_000);
      },
      // A power loss of the container runtime: containerd, every shim and every container SIGKILLed at once,
      // then containerd started again. The kubelet keeps running with the pods it was given (as it does
      // through an API server outage) and recreates their sandboxes and containers.
      'restart-runtime': async () => {
        const killed = new Set<number>();
        await containerd?.kill();
        // Shims (runtime/) and containers (kubepods/), until none is left.
        await waitFor(
          () => {
            const pids = [...sandbox.pids('runtime'), ...sandbox.pids('kubepods')];
            for (const pid of pids) {
              try {
                process.kill(pid, 'SIGKILL');
                killed.add(pid);
              } catch {
                // gone
              }
            }
            return pids.length === 0;
          },
          { timeoutMs: 30_000, intervalMs: 50, message: 'the shims and containers to be gone' },
        );
        await startContainerd();
        return { killed: killed.size };
      },
    };
    control = createServer((req, res) => {
      const u = new URL(req.url ?? '/', 'http://node');
      const reply = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      if (req.method === 'POST' && u.pathname === '/lease') {
        const pid = Number(u.searchParams.get('pid'));
        const holder = u.searchParams.get('holder') ?? '?';
        const grant = () => {
          if (res.destroyed || res.writableEnded) return false;
          lease = { id: randomBytes(8).toString('hex'), pid, holder };
          reply(200, lease);
          return true;
        };
        if (!lease) grant();
        else {
          waiters.push(grant);
          // The client gave up (its timeout) before its turn: it is no longer waiting.
          res.on('close', () => {
            const i = waiters.indexOf(grant);
            if (i >= 0 && !res.writableEnded) waiters.splice(i, 1);
          });
        }
        return;
      }
      if (req.method === 'DELETE' && u.pathname.startsWith('/lease/')) {
        if (lease?.id === u.pathname.slice('/lease/'.length)) releaseLease();
        reply(200, {});
        return;
      }
      const action = req.method === 'POST' ? actions[u.pathname.slice(1)] : undefined;
      if (!action) {
        reply(404, { error: `no such action: ${req.method} ${u.pathname}` });
        return;
      }
      action().then(
        (result) => reply(200, result ?? {}),
        (err: unknown) => reply(500, { error: err instanceof Error ? err.message : String(err) }),
      );
    });
    rmSync(controlSocket, { force: true });
    await new Promise<void>((resolve, reject) => {
      control!.once('error', reject);
      control!.listen(controlSocket, () => resolve());
    });
    control.unref();

    timings.total = Date.now() - t0;
    const info: NodeInfo = {
      name: NODE_NAME,
      nodeIp,
      hostIp: sandbox.hostIp,
      kube,
      consulUrl,
      images: {
        gateway,
        gatewayNextTag,
        backend: image(images.backend.ref),
        pause: image(images.pause.ref),
      },
      holderPid: sandbox.record.holderPid!,
      cgroupProcs: sandbox.procsFiles('system'),
      controlSocket,
      dir,
      logPaths,
      timings,
    };
    return {
      info,
      stop: async () => {
        clearInterval(leaseWatch);
        const started = Date.now();
        const left = await stopAll();
        console.log(
          `[harness] real node removed in ${Date.now() - started} ms${left.length > 0 ? ' (not all of it)' : ''}`,
        );
        return left;
      },
    };
  } catch (err) {
    const text = `${err instanceof Error ? err.message : String(err)}\n${diagnostics()}`;
    const left = await stopAll();
    throw new Error(
      `the real node did not start: ${text}${left.length > 0 ? `\nnot removed: ${left.join('; ')}` : ''}`,
    );
  }
}

/** One GET to the API server without verifying its certificate (the CA is read from disk once it is up). */
async function fetchInsecure(url: string, token: string): Promise<number> {
  const { request } = await import('node:https');
  return new Promise((resolve) => {
    const req = request(
      url,
      { rejectUnauthorized: false, headers: { authorization: `Bearer ${token}` }, timeout: 5_000 },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
    req.end();
  });
}
