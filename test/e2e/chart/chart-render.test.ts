/**
 * `helm lint --strict` and `helm template` for the default values and a matrix of edge set-ups, each rendered
 * manifest applied to the real kube-apiserver with `kubectl apply --dry-run=server` (CRDs installed first), plus
 * what each set-up must render: host networking and capabilities, Consul access, Secrets, RBAC scope, monitors.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { helm } from '../../support/helm.ts';
import { waitCrdsEstablished } from '../../support/kube.ts';
import { kubeLogs, printLogsOnFailure } from '../../support/logs.ts';
import { sharedKube } from '../../support/shared.ts';
import {
  CHART_DIR,
  envOf,
  find,
  gatewayContainer,
  type Manifest,
  monitoringCrds,
  only,
  parseManifests,
  render,
  toYamlStream,
  valuesFile,
} from './chart-support.ts';

const kube = sharedKube();
printLogsOnFailure(() => kubeLogs(kube));

const run = Math.random().toString(36).slice(2, 7);
const MONITOR_KINDS = new Set(['ServiceMonitor', 'PodMonitor']);
let monitorSkipReason: string | undefined;

async function ensureNamespace(ns: string): Promise<void> {
  const r = await kube.kubectl(['create', 'namespace', ns], { allowFailure: true });
  if (r.code !== 0 && !r.stderr.includes('AlreadyExists')) throw new Error(r.stderr);
}

/** Applies the objects with --dry-run=server; returns kubectl's lines ("… created (server dry run)"). */
async function dryRunApply(objects: Manifest[]): Promise<string[]> {
  const applied = monitorSkipReason ? objects.filter((o) => !MONITOR_KINDS.has(o.kind)) : objects;
  const r = await kube.kubectl(['apply', '--dry-run=server', '-f', '-'], {
    input: toYamlStream(applied),
    allowFailure: true,
  });
  expect(r.stderr, 'kubectl apply --dry-run=server rejected the rendered chart').toBe('');
  expect(r.code).toBe(0);
  return r.stdout.trim().split('\n');
}

beforeAll(async () => {
  // The chart's own CRDs, exactly as Helm installs them from charts/edgegate/crds/.
  const crdDir = join(CHART_DIR, 'crds');
  for (const f of readdirSync(crdDir)) {
    await kube.kubectl(['apply', '--server-side', '--force-conflicts', '-f', join(crdDir, f)]);
  }
  const monitoring = await monitoringCrds();
  if ('skipped' in monitoring) {
    monitorSkipReason = monitoring.skipped;
    console.warn(`ServiceMonitor/PodMonitor are left out of the server-side dry run: ${monitorSkipReason}`);
  } else {
    await kube.kubectl(['apply', '--server-side', '--force-conflicts', '-f', '-'], {
      input: monitoring.yaml,
    });
  }
  await waitCrdsEstablished(kube, [
    'gatewayroutes.edgegate.io',
    ...(monitorSkipReason
      ? []
      : ['servicemonitors.monitoring.coreos.com', 'podmonitors.monitoring.coreos.com']),
  ]);
}, 300_000);

interface Case {
  name: string;
  values: Record<string, unknown>;
  /** Namespaces the values refer to (they must exist for a server-side apply). */
  namespaces?: string[];
  check(objects: Manifest[], ns: string): void;
}

const cases: Case[] = [
  {
    name: 'default values',
    values: {},
    check(objects, ns) {
      const ds = only(objects, 'DaemonSet');
      const pod = ds.spec.template.spec;
      const c = gatewayContainer(objects);
      const env = envOf(c);
      expect(pod.hostNetwork).toBeUndefined();
      // hostPorts without hostNetwork: no second pod fits on the node, so the old one goes first.
      expect(ds.spec.updateStrategy).toEqual({
        type: 'RollingUpdate',
        rollingUpdate: { maxSurge: 0, maxUnavailable: 1 },
      });
      expect(ds.spec.template.metadata.annotations).toEqual({
        'prometheus.io/scrape': 'true',
        'prometheus.io/port': '9901',
        'prometheus.io/path': '/metrics',
      });
      // 80 on the node → 8080 in the pod: nothing below 1024 is bound, so no capability at all.
      expect(c.ports).toContainEqual({ name: 'http', containerPort: 8080, hostPort: 80, protocol: 'TCP' });
      expect(c.securityContext).toEqual({
        runAsNonRoot: true,
        readOnlyRootFilesystem: true,
        allowPrivilegeEscalation: false,
        privileged: false,
        capabilities: { drop: ['ALL'] },
      });
      expect(c.command).toBeUndefined();
      expect(pod.securityContext.runAsNonRoot).toBe(true);
      expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 9901 });
      expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 9901 });
      // Probes and metrics on every interface of the pod; the debug views on its loopback only, never a port.
      expect(env.get('EDGEGATE_ADMIN')!.value).toBe(':9901');
      expect(env.get('EDGEGATE_ADMIN_DEBUG')!.value).toBe('127.0.0.1:9902');
      expect(c.ports.map((p: { name: string }) => p.name)).toEqual(['http', 'admin']);
      expect(env.get('EDGEGATE_WORKER_BLOCK_TIMEOUT')!.value).toBe('5s');
      // The node-local agent through the downward API; HOST_IP comes first so $(HOST_IP) expands.
      const names = [...env.keys()];
      expect(names.indexOf('HOST_IP')).toBeLessThan(names.indexOf('CONSUL_HTTP_ADDR'));
      expect(env.get('HOST_IP')!.valueFrom.fieldRef.fieldPath).toBe('status.hostIP');
      expect(env.get('CONSUL_HTTP_ADDR')!.value).toBe('http://$(HOST_IP):8500');
      expect(env.get('CONSUL_HTTP_TOKEN')).toBeUndefined();
      expect(env.get('POD_NAMESPACE')!.valueFrom.fieldRef.fieldPath).toBe('metadata.namespace');
      expect(env.get('EDGEGATE_KUBE')!.value).toBe('true');
      // Worker count from the CPU limit.
      expect(env.get('EDGEGATE_WORKERS')!.valueFrom.resourceFieldRef).toEqual({
        containerName: 'edgegate',
        resource: 'limits.cpu',
        divisor: '1',
      });
      // Shutdown: preStop sleep 5 + drain delay 5 + drain timeout 25 < grace period.
      expect(c.lifecycle.preStop).toEqual({ sleep: { seconds: 5 } });
      expect(env.get('EDGEGATE_DRAIN_DELAY')!.value).toBe('5s');
      expect(env.get('EDGEGATE_DRAIN_TIMEOUT')!.value).toBe('25s');
      expect(pod.terminationGracePeriodSeconds).toBe(40);
      // State volume for the last-known-good table.
      expect(env.get('EDGEGATE_STATE_DIR')!.value).toBe('/var/lib/edgegate');
      expect(pod.volumes).toContainEqual({ name: 'state', emptyDir: { sizeLimit: '64Mi' } });
      // Cluster-wide watch: one ClusterRole, no Secrets anywhere; the Lease Role in the release namespace.
      const cr = only(objects, 'ClusterRole');
      expect(JSON.stringify(cr.rules)).not.toContain('secrets');
      expect(find(objects, 'Role').map((r) => `${r.metadata.namespace}/${r.metadata.name}`)).toEqual([
        `${ns}/${cr.metadata.name}-leader-election`,
      ]);
      const svc = only(objects, 'Service');
      expect(svc.spec.clusterIP).toBe('None');
      expect(svc.spec.ports).toEqual([{ name: 'metrics', port: 9901, targetPort: 9901, protocol: 'TCP' }]);
      for (const kind of [
        'ServiceMonitor',
        'PodMonitor',
        'NetworkPolicy',
        'PodDisruptionBudget',
        'ConfigMap',
      ])
        expect(find(objects, kind)).toEqual([]);
    },
  },
  {
    name: 'hostNetwork on, listening on 80/443 itself',
    values: {
      hostNetwork: true,
      tls: { enabled: true, secretNamespaces: [`tls-${run}`] },
      nodeSelector: { 'node-role.kubernetes.io/edge': '' },
      tolerations: [{ key: 'node-role.kubernetes.io/edge', operator: 'Exists', effect: 'NoSchedule' }],
    },
    namespaces: [`tls-${run}`],
    check(objects) {
      const ds = only(objects, 'DaemonSet');
      const pod = ds.spec.template.spec;
      const c = gatewayContainer(objects);
      const env = envOf(c);
      expect(pod.hostNetwork).toBe(true);
      // The new pod starts next to the old one; both listen with SO_REUSEPORT (test/e2e/node/upgrade.test.ts).
      expect(ds.spec.updateStrategy.rollingUpdate).toEqual({ maxSurge: 1, maxUnavailable: 0 });
      expect(pod.dnsPolicy).toBe('ClusterFirstWithHostNet');
      expect(pod.nodeSelector).toEqual({ 'kubernetes.io/os': 'linux', 'node-role.kubernetes.io/edge': '' });
      expect(pod.tolerations).toHaveLength(1);
      expect(env.get('EDGEGATE_LISTEN')!.value).toBe(':80');
      expect(env.get('EDGEGATE_LISTEN_TLS')!.value).toBe(':443');
      // No declared ports: each would become a hostPort and keep the surge pod from being scheduled.
      expect(c.ports).toBeUndefined();
      expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 9901 });
      // Binding below 1024 as non-root: NET_BIND_SERVICE, effective through the image's node-netbind file caps.
      expect(c.securityContext.capabilities).toEqual({ drop: ['ALL'], add: ['NET_BIND_SERVICE'] });
      expect(c.securityContext.allowPrivilegeEscalation).toBe(true);
      expect(c.securityContext.runAsNonRoot).toBe(true);
      expect(c.command[0]).toBe('/usr/local/bin/node-netbind');
    },
  },
  {
    name: 'hostNetwork on, unprivileged ports',
    values: { hostNetwork: true, hostPorts: { http: 0, https: 0 } },
    check(objects) {
      const c = gatewayContainer(objects);
      expect(envOf(c).get('EDGEGATE_LISTEN')!.value).toBe(':8080');
      expect(c.ports).toBeUndefined();
      expect(c.securityContext.capabilities).toEqual({ drop: ['ALL'] });
      expect(c.securityContext.allowPrivilegeEscalation).toBe(false);
      expect(c.command).toBeUndefined();
    },
  },
  {
    name: 'ServiceMonitor and PodMonitor on',
    values: {
      serviceMonitor: { enabled: true, labels: { release: 'prometheus' }, interval: '15s' },
      podMonitor: { enabled: true },
    },
    check(objects, ns) {
      const sm = only(objects, 'ServiceMonitor');
      expect(sm.metadata.labels!.release).toBe('prometheus');
      expect(sm.spec.endpoints[0]).toMatchObject({ port: 'metrics', path: '/metrics', interval: '15s' });
      expect(sm.spec.namespaceSelector).toEqual({ matchNames: [ns] });
      // The ServiceMonitor's selector matches the metrics Service's labels.
      const svc = only(objects, 'Service');
      for (const [k, v] of Object.entries(sm.spec.selector.matchLabels as Record<string, string>))
        expect(svc.metadata.labels![k]).toBe(v);
      const pm = only(objects, 'PodMonitor');
      expect(pm.spec.podMetricsEndpoints[0]).toMatchObject({ port: 'admin', path: '/metrics' });
      const podLabels = only(objects, 'DaemonSet').spec.template.metadata.labels as Record<string, string>;
      for (const [k, v] of Object.entries(pm.spec.selector.matchLabels as Record<string, string>))
        expect(podLabels[k]).toBe(v);
    },
  },
  {
    name: 'PodMonitor with hostNetwork',
    values: { hostNetwork: true, podMonitor: { enabled: true } },
    check(objects) {
      // The pod declares no port: the one target of each pod gets the admin port by number.
      const ep = only(objects, 'PodMonitor').spec.podMetricsEndpoints[0];
      expect(ep.port).toBeUndefined();
      expect(ep.path).toBe('/metrics');
      expect(ep.relabelings[0]).toEqual({
        sourceLabels: ['__meta_kubernetes_pod_ip'],
        targetLabel: '__address__',
        replacement: '$1:9901',
      });
      expect(only(objects, 'Service').spec.ports[0].targetPort).toBe(9901);
    },
  },
  {
    name: 'explicit Consul address',
    values: { consul: { address: 'https://consul.service.dc1.consul:8501', datacenter: 'dc1' } },
    check(objects) {
      const env = envOf(gatewayContainer(objects));
      expect(env.get('CONSUL_HTTP_ADDR')!.value).toBe('https://consul.service.dc1.consul:8501');
      expect(env.get('EDGEGATE_DATACENTER')!.value).toBe('dc1');
    },
  },
  {
    name: 'ACL token and CA from existing Secrets',
    values: {
      consul: {
        aclToken: { secretName: 'consul-acl', secretKey: 'edge-token' },
        ca: { secretName: 'consul-ca' },
      },
    },
    check(objects) {
      const ds = only(objects, 'DaemonSet');
      const c = gatewayContainer(objects);
      const env = envOf(c);
      expect(env.get('CONSUL_HTTP_TOKEN')!.valueFrom).toEqual({
        secretKeyRef: { name: 'consul-acl', key: 'edge-token' },
      });
      expect(env.get('CONSUL_CACERT')!.value).toBe('/etc/edgegate/consul-ca/ca.crt');
      expect(c.volumeMounts).toContainEqual({
        name: 'consul-ca',
        mountPath: '/etc/edgegate/consul-ca',
        readOnly: true,
      });
      expect(ds.spec.template.spec.volumes).toContainEqual({
        name: 'consul-ca',
        secret: { secretName: 'consul-ca', items: [{ key: 'ca.crt', path: 'ca.crt' }] },
      });
      // Reading the token Secret is the kubelet's job: the gateway's RBAC still has no Secrets.
      expect(JSON.stringify(find(objects, 'ClusterRole'))).not.toContain('secrets');
    },
  },
  {
    name: 'Global rate-limit store: URL and timeout in the environment, the password from a mounted Secret',
    values: {
      rateLimitStore: {
        url: 'redis://redis.edge.svc:6379/2',
        timeout: '50ms',
        password: { secretName: 'edge-redis', secretKey: 'redis-password' },
      },
    },
    check(objects) {
      const ds = only(objects, 'DaemonSet');
      const c = gatewayContainer(objects);
      const env = envOf(c);
      expect(env.get('EDGEGATE_REDIS_URL')!.value).toBe('redis://redis.edge.svc:6379/2');
      expect(env.get('EDGEGATE_REDIS_TIMEOUT')!.value).toBe('50ms');
      expect(env.get('EDGEGATE_REDIS_PASSWORD_FILE')!.value).toBe('/etc/edgegate/redis/redis-password');
      expect(c.volumeMounts).toContainEqual({
        name: 'redis-password',
        mountPath: '/etc/edgegate/redis',
        readOnly: true,
      });
      expect(ds.spec.template.spec.volumes).toContainEqual({
        name: 'redis-password',
        secret: { secretName: 'edge-redis', items: [{ key: 'redis-password', path: 'redis-password' }] },
      });
      // The kubelet mounts it: the gateway's RBAC still has no Secrets.
      expect(JSON.stringify(find(objects, 'ClusterRole'))).not.toContain('secrets');
    },
  },
  {
    name: 'PROXY protocol from the load balancers’ CIDRs',
    values: { proxyProtocol: { trustedCidrs: ['10.0.0.0/8', '2001:db8::/32'], timeout: '3s' } },
    check(objects) {
      const env = envOf(gatewayContainer(objects));
      expect(env.get('EDGEGATE_PROXY_PROTOCOL')!.value).toBe('10.0.0.0/8,2001:db8::/32');
      expect(env.get('EDGEGATE_PROXY_PROTOCOL_TIMEOUT')!.value).toBe('3s');
    },
  },
  {
    name: 'TLS on: Secrets readable only in the listed namespaces',
    values: { tls: { enabled: true, secretNamespaces: [`tls-a-${run}`, `tls-b-${run}`] } },
    namespaces: [`tls-a-${run}`, `tls-b-${run}`],
    check(objects) {
      const c = gatewayContainer(objects);
      expect(envOf(c).get('EDGEGATE_LISTEN_TLS')!.value).toBe(':8443');
      // The gateway reads spec.tls Secrets in exactly the namespaces the Roles grant.
      expect(envOf(c).get('EDGEGATE_TLS_SECRET_NAMESPACES')!.value).toBe(`tls-a-${run},tls-b-${run}`);
      expect(c.ports).toContainEqual({ name: 'https', containerPort: 8443, hostPort: 443, protocol: 'TCP' });
      expect(c.securityContext.capabilities).toEqual({ drop: ['ALL'] });
      const secretRoles = find(objects, 'Role').filter((r) => JSON.stringify(r.rules).includes('secrets'));
      expect(secretRoles.map((r) => r.metadata.namespace).sort()).toEqual([`tls-a-${run}`, `tls-b-${run}`]);
      for (const r of secretRoles)
        expect(r.rules).toEqual([{ apiGroups: [''], resources: ['secrets'], verbs: ['list', 'watch'] }]);
      expect(JSON.stringify(find(objects, 'ClusterRole'))).not.toContain('secrets');
    },
  },
  {
    name: 'TLS with tls.secretNames: the Secret Roles name exactly those Secrets',
    values: {
      tls: {
        enabled: true,
        secretNamespaces: [`tls-n-${run}`],
        secretNames: ['shop-tls', 'upstream-client'],
      },
    },
    namespaces: [`tls-n-${run}`],
    check(objects) {
      const secretRoles = find(objects, 'Role').filter((r) => JSON.stringify(r.rules).includes('secrets'));
      expect(secretRoles.map((r) => r.metadata.namespace)).toEqual([`tls-n-${run}`]);
      expect(secretRoles[0]!.rules).toEqual([
        {
          apiGroups: [''],
          resources: ['secrets'],
          verbs: ['list', 'watch'],
          resourceNames: ['shop-tls', 'upstream-client'],
        },
      ]);
    },
  },
  {
    name: 'watched namespaces, fixed workers, hostPath state, NetworkPolicy and PDB',
    values: {
      kubernetes: { watchNamespaces: [`apps-${run}`], statusWriteRate: 250 },
      workers: 3,
      state: { type: 'hostPath', hostPath: '/var/lib/edgegate-test' },
      networkPolicy: {
        enabled: true,
        adminFrom: [{ namespaceSelector: { matchLabels: { name: 'monitoring' } } }],
      },
      podDisruptionBudget: { enabled: true, maxUnavailable: '10%' },
      updateStrategy: { maxUnavailable: '20%' },
      drain: { preStopSleepSeconds: 0 },
      terminationGracePeriodSeconds: 60,
      extraEnv: [{ name: 'EDGEGATE_LEASE_DURATION', value: '20s' }],
    },
    namespaces: [`apps-${run}`],
    check(objects, ns) {
      const ds = only(objects, 'DaemonSet');
      const c = gatewayContainer(objects);
      const env = envOf(c);
      expect(env.get('EDGEGATE_WORKERS')!.value).toBe('3');
      expect(env.get('EDGEGATE_WATCH_NAMESPACES')!.value).toBe(`apps-${run}`);
      expect(env.get('EDGEGATE_STATUS_WRITE_RATE')!.value).toBe('250');
      expect(env.get('EDGEGATE_LEASE_DURATION')!.value).toBe('20s');
      expect(c.lifecycle).toBeUndefined();
      expect(ds.spec.template.spec.terminationGracePeriodSeconds).toBe(60);
      expect(ds.spec.updateStrategy.rollingUpdate.maxUnavailable).toBe('20%');
      expect(ds.spec.template.spec.volumes).toContainEqual({
        name: 'state',
        hostPath: { path: '/var/lib/edgegate-test', type: 'DirectoryOrCreate' },
      });
      expect(find(objects, 'ClusterRole')).toEqual([]);
      expect(
        find(objects, 'Role')
          .map((r) => r.metadata.namespace)
          .sort(),
      ).toEqual([`apps-${run}`, ns].sort());
      expect(only(objects, 'PodDisruptionBudget').spec.maxUnavailable).toBe('10%');
      const np = only(objects, 'NetworkPolicy');
      expect(np.spec.ingress).toHaveLength(2);
      expect(np.spec.ingress[1].ports).toEqual([{ port: 'admin', protocol: 'TCP' }]);
    },
  },
];

cases.push({
  name: 'edge nodes only: nodeSelector, tolerations, affinity, priority class and resources',
  values: {
    nodeSelector: { 'node-role.kubernetes.io/edge': '' },
    tolerations: [{ key: 'node-role.kubernetes.io/edge', operator: 'Exists', effect: 'NoSchedule' }],
    affinity: {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [
            {
              matchExpressions: [{ key: 'topology.kubernetes.io/zone', operator: 'In', values: ['edge-a'] }],
            },
          ],
        },
      },
    },
    priorityClassName: 'system-node-critical',
    resources: { requests: { cpu: '500m', memory: '128Mi' }, limits: { cpu: '3', memory: '2Gi' } },
  },
  check(objects) {
    const pod = only(objects, 'DaemonSet').spec.template.spec;
    // The chart's own Linux selector stays beside the user's.
    expect(pod.nodeSelector).toEqual({ 'kubernetes.io/os': 'linux', 'node-role.kubernetes.io/edge': '' });
    expect(pod.tolerations).toEqual([
      { key: 'node-role.kubernetes.io/edge', operator: 'Exists', effect: 'NoSchedule' },
    ]);
    expect(
      pod.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]
        .matchExpressions[0],
    ).toEqual({ key: 'topology.kubernetes.io/zone', operator: 'In', values: ['edge-a'] });
    expect(pod.priorityClassName).toBe('system-node-critical');
    const c = gatewayContainer(objects);
    expect(c.resources).toEqual({
      requests: { cpu: '500m', memory: '128Mi' },
      limits: { cpu: '3', memory: '2Gi' },
    });
    // The worker count still follows the CPU limit (the kubelet resolves it to 3 here).
    expect(envOf(c).get('EDGEGATE_WORKERS')!.valueFrom.resourceFieldRef.resource).toBe('limits.cpu');
  },
});

const dashboardsDir = join(CHART_DIR, 'dashboards');
cases.push({
  name: 'Grafana dashboard ConfigMap',
  values: { dashboards: { enabled: true } },
  check(objects) {
    const cm = only(objects, 'ConfigMap');
    expect(cm.metadata.labels!.grafana_dashboard).toBe('1');
    const files = readdirSync(dashboardsDir).filter((n) => n.endsWith('.json'));
    expect(files).toContain('edgegate.json');
    for (const f of files) expect(() => JSON.parse(cm.data[f])).not.toThrow();
  },
});

describe('chart against helm and the real kube-apiserver', () => {
  it.each(cases.map((c, i) => [c.name, c, i] as const))(
    '%s: lint, template, server dry run',
    async (_n, c, i) => {
      const ns = `edge-${run}-${i}`;
      for (const n of [ns, ...(c.namespaces ?? [])]) await ensureNamespace(n);
      const lint = await helm(
        ['lint', '--strict', CHART_DIR, '--namespace', ns, '-f', valuesFile(c.values)],
        {
          allowFailure: true,
        },
      );
      expect(lint.code, lint.stdout + lint.stderr).toBe(0);
      expect(lint.stdout).toContain('0 chart(s) failed');

      const { objects } = await render(`eg${i}`, ns, c.values);
      c.check(objects, ns);
      const lines = await dryRunApply(objects);
      const expected = objects.filter((o) => !(monitorSkipReason && MONITOR_KINDS.has(o.kind))).length;
      expect(lines.filter((l) => l.endsWith('(server dry run)'))).toHaveLength(expected);
    },
  );

  it('the server dry run does check: a broken DaemonSet and a mistyped ServiceMonitor are rejected', async () => {
    const ns = `edge-${run}-neg`;
    await ensureNamespace(ns);
    const { objects } = await render('neg', ns, { serviceMonitor: { enabled: true } });
    const ds = structuredClone(only(objects, 'DaemonSet'));
    ds.spec.template.spec.containers[0].ports[0].hostPort = 70_000;
    const bad = await kube.kubectl(['apply', '--dry-run=server', '-f', '-'], {
      input: toYamlStream([ds]),
      allowFailure: true,
    });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('hostPort');
    if (monitorSkipReason) return;
    const sm = structuredClone(only(objects, 'ServiceMonitor'));
    sm.spec.endpoints[0].interval = 'every minute';
    const badSm = await kube.kubectl(['apply', '--dry-run=server', '-f', '-'], {
      input: toYamlStream([sm]),
      allowFailure: true,
    });
    expect(badSm.code).not.toBe(0);
    expect(badSm.stderr).toContain('interval');
  });

  it('NOTES tell how to reach the gateway and its metrics (helm install --dry-run=server)', async () => {
    const ns = `edge-${run}-notes`;
    await ensureNamespace(ns);
    const r = await helm(
      ['install', 'edgegate', CHART_DIR, '--namespace', ns, '--dry-run=server', '-f', valuesFile({})],
      { kubeconfig: kube.kubeconfigPath },
    );
    const notes = r.stdout.slice(r.stdout.indexOf('NOTES:'));
    console.log(notes);
    expect(notes).toContain('http://<node-address>:80/');
    expect(notes).toContain(`kubectl -n ${ns} port-forward ds/edgegate 9901 9902`);
    expect(notes).toContain('curl http://127.0.0.1:9901/metrics');
    expect(notes).toContain('curl http://127.0.0.1:9902/debug/routes');
    expect(notes).toContain('kubectl get gatewayroutes -A');
  });

  it('renders the pre-1.30 preStop as an exec sleep', async () => {
    const r = await helm(['template', 'old', CHART_DIR, '--kube-version', 'v1.29.0']);
    const c = gatewayContainer(parseManifests(r.stdout));
    expect(c.lifecycle.preStop).toEqual({ exec: { command: ['sleep', '5'] } });
  });
});
