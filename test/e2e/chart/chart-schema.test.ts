/**
 * Bad values never reach the cluster: values.schema.json (and the few cross-field checks in the templates) make
 * `helm template` / `helm install` fail with a message that names the value. Real helm, no server.
 */
import { describe, expect, it } from 'vitest';
import { template } from './chart-support.ts';

const rejected: Array<[string, Record<string, unknown>, string]> = [
  ['wrong type (string port)', { ports: { http: 'eighty' } }, "at '/ports/http': got string, want integer"],
  [
    'wrong type (boolean as string)',
    { hostNetwork: 'enabled' },
    "at '/hostNetwork': got string, want boolean",
  ],
  ['negative port', { ports: { admin: -1 } }, "at '/ports/admin': minimum: got -1, want 1"],
  ['negative host port', { hostPorts: { https: -443 } }, "at '/hostPorts/https': minimum: got -443, want 0"],
  ['port above 65535', { ports: { https: 70000 } }, "at '/ports/https': maximum: got 70,000, want 65,535"],
  ['unknown top-level key', { hostnetwork: true }, "additional properties 'hostnetwork' not allowed"],
  [
    'unknown nested key',
    { consul: { token: 'x' } },
    "at '/consul': additional properties 'token' not allowed",
  ],
  ['negative worker count', { workers: -2 }, "at '/workers': minimum: got -2, want 0"],
  [
    'unknown state type',
    { state: { type: 'disk' } },
    "at '/state/type': value must be one of 'emptyDir', 'hostPath'",
  ],
  ['bad log level', { logLevel: 'verbose' }, "at '/logLevel': value must be one of"],
  [
    'TLS without Secret namespaces',
    { tls: { enabled: true } },
    "at '/tls/secretNamespaces': minItems: got 0, want 1",
  ],
  [
    'bad maxUnavailable',
    { updateStrategy: { maxUnavailable: 'half' } },
    "at '/updateStrategy/maxUnavailable'",
  ],
  [
    'bad maxSurge',
    { hostNetwork: true, updateStrategy: { maxSurge: 'one' } },
    "at '/updateStrategy/maxSurge'",
  ],
  [
    'a surge the scheduler can never place (hostPorts without hostNetwork)',
    { updateStrategy: { maxSurge: 1 } },
    'updateStrategy.maxSurge is 1, but the pods publish hostPorts without hostNetwork',
  ],
  [
    'a rollout that can replace nothing',
    { hostNetwork: true, updateStrategy: { maxSurge: '0%', maxUnavailable: 0 } },
    'updateStrategy.maxSurge and updateStrategy.maxUnavailable cannot both be 0',
  ],
  [
    'root user',
    { securityContext: { runAsUser: 0 } },
    "at '/securityContext/runAsUser': minimum: got 0, want 1",
  ],
  ['bad Consul address', { consul: { address: 'consul at dc1' } }, "at '/consul/address'"],
  [
    'grace period shorter than the drain',
    { terminationGracePeriodSeconds: 20 },
    'terminationGracePeriodSeconds (20) must be greater than drain.preStopSleepSeconds + drain.delaySeconds + drain.timeoutSeconds (35)',
  ],
  [
    'the debug port on the admin port',
    { ports: { adminDebug: 9901 } },
    'ports.adminDebug must differ from ports.admin',
  ],
  ['a worker block timeout without a unit', { workerBlockTimeout: 'soon' }, "at '/workerBlockTimeout'"],
  [
    'a Redis password in the URL (it belongs in a Secret)',
    { rateLimitStore: { url: 'redis://user:hunter2@redis.edge.svc:6379' } },
    "at '/rateLimitStore/url'",
  ],
  ['a Redis timeout above 200ms', { rateLimitStore: { timeout: '2s' } }, "at '/rateLimitStore/timeout'"],
  [
    'a PROXY protocol source that is no CIDR',
    { proxyProtocol: { trustedCidrs: ['lb.example'] } },
    "at '/proxyProtocol/trustedCidrs/0'",
  ],
  [
    'ServiceMonitor without the metrics Service',
    { serviceMonitor: { enabled: true }, metricsService: { enabled: false } },
    'serviceMonitor.enabled needs metricsService.enabled',
  ],
];

describe('values.schema.json', () => {
  it.each(rejected)('rejects %s', async (_name, values, message) => {
    const r = await template('bad', 'edge', values, { allowFailure: true });
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(message);
  });

  it('accepts the documented value shapes', async () => {
    const r = await template('ok', 'edge', {
      workers: 0,
      updateStrategy: { maxUnavailable: '25%' },
      resources: { limits: { cpu: 1.5, memory: '2Gi' }, requests: { cpu: '500m', memory: '512Mi' } },
      consul: { address: '10.0.0.5:8500' },
      terminationGracePeriodSeconds: 36,
      workerBlockTimeout: '10s',
      rateLimitStore: {
        url: 'rediss://redis.edge.svc:6380/1',
        timeout: '150ms',
        password: { secretName: 'redis' },
      },
      proxyProtocol: { trustedCidrs: ['10.0.0.0/8', '::1'], timeout: '500ms' },
    });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('kind: DaemonSet');
  });
});
