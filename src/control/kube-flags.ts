/** `edgegate run` flags of the Kubernetes source → KubeOptions (kept here so the CLI stays wiring only). */
import { ConfigError } from '../lib/errors.ts';
import { type KubeOptions, parseDurationMs } from './start-kube.ts';

export interface KubeFlags {
  kubeconfig?: string;
  watchNamespaces?: string;
  leaseNamespace?: string;
  leaseDuration?: string;
  renewDeadline?: string;
  retryPeriod?: string;
  tlsSecretNamespaces?: string;
  statusWriteRate?: string;
  ingress?: boolean;
  ingressClass?: string;
  ingressPublishAddress?: string;
  gatewayApi?: boolean;
  gatewayApiPorts?: string;
  gatewayApiAddresses?: string;
}

/** `--status-write-rate`: writes per second, a positive number (fractions allowed: 0.5 is one every 2 s). */
export const MAX_STATUS_WRITE_RATE = 10_000;

function statusWriteRate(value: string | undefined): number | undefined {
  if (value === undefined || value === '') return undefined;
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value.trim()) || !(n > 0) || n > MAX_STATUS_WRITE_RATE)
    throw new ConfigError(
      `--status-write-rate: expected writes per second, above 0 and at most ${MAX_STATUS_WRITE_RATE}, got ${JSON.stringify(value)}`,
    );
  return n;
}

function list(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((n) => n.trim())
    .filter(Boolean);
}

export function kubeOptionsFrom(o: KubeFlags): KubeOptions {
  const namespaces = list(o.watchNamespaces);
  const secretNamespaces = list(o.tlsSecretNamespaces);
  for (const ns of secretNamespaces)
    if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(ns) || ns.length > 63)
      throw new ConfigError(`--tls-secret-namespaces: invalid namespace ${JSON.stringify(ns)}`);
  const out: KubeOptions = {};
  if (o.kubeconfig) out.kubeconfig = o.kubeconfig;
  if (namespaces.length > 0) out.namespaces = namespaces;
  if (o.leaseNamespace) out.leaseNamespace = o.leaseNamespace;
  if (secretNamespaces.length > 0) out.tlsSecretNamespaces = [...new Set(secretNamespaces)];
  const lease = parseDurationMs(o.leaseDuration, '--lease-duration');
  const renew = parseDurationMs(o.renewDeadline, '--renew-deadline');
  const retry = parseDurationMs(o.retryPeriod, '--retry-period');
  if (lease !== undefined) out.leaseDurationMs = lease;
  if (renew !== undefined) out.renewDeadlineMs = renew;
  if (retry !== undefined) out.retryPeriodMs = retry;
  if (o.ingress) {
    const publish = list(o.ingressPublishAddress);
    for (const a of publish)
      if (
        !/^[0-9A-Fa-f:.]+$/.test(a) &&
        !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(a)
      )
        throw new ConfigError(
          `--ingress-publish-address: ${JSON.stringify(a)} is neither an IP address nor a DNS name`,
        );
    out.ingress = { publish, ...(o.ingressClass ? { legacyClassName: o.ingressClass } : {}) };
  }
  const rate = statusWriteRate(o.statusWriteRate);
  if (rate !== undefined) out.statusQps = rate;
  if (o.gatewayApi) out.gatewayApi = gatewayApiOptionsFrom(o);
  return out;
}

/** `--gateway-api-ports HTTP[,HTTPS]` (the ports clients reach; default 80,443) and `--gateway-api-addresses`. */
function gatewayApiOptionsFrom(o: KubeFlags): NonNullable<KubeOptions['gatewayApi']> {
  const ports = list(o.gatewayApiPorts ?? '80,443').map((p) => {
    const n = Number(p);
    if (!/^[0-9]+$/.test(p) || n < 1 || n > 65535)
      throw new ConfigError(
        `--gateway-api-ports: expected HTTP[,HTTPS] port numbers, got ${JSON.stringify(p)}`,
      );
    return n;
  });
  if (ports.length < 1 || ports.length > 2)
    throw new ConfigError('--gateway-api-ports: expected one or two ports: HTTP[,HTTPS]');
  const addresses = list(o.gatewayApiAddresses);
  for (const a of addresses)
    if (!/^[0-9a-fA-F:.]+$/.test(a) && !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(a))
      throw new ConfigError(
        `--gateway-api-addresses: ${JSON.stringify(a)} is neither an IP address nor a hostname`,
      );
  return { httpPort: ports[0]!, ...(ports[1] !== undefined ? { httpsPort: ports[1] } : {}), addresses };
}
