/**
 * The Gateway API pieces scripts/test-deps.sh provides at GATEWAY_API_VERSION (scripts/test-deps.versions): the
 * standard-channel CRDs, the conformance suite's test binary and its echo backend, and installing the CRDs (with
 * edgegate's own) into an API server.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { consulServiceCrdYaml } from '../../src/api/consul-service-crd.ts';
import { gatewayRouteCrdYaml } from '../../src/api/crd.ts';
import { binDir, VERSIONS_FILE } from './bins.ts';
import type { KubeClient } from './kube.ts';

export function gatewayApiVersion(): string {
  const m = /^GATEWAY_API_VERSION=(\S+)/m.exec(readFileSync(VERSIONS_FILE, 'utf8'));
  if (!m) throw new Error(`GATEWAY_API_VERSION is not set in ${VERSIONS_FILE}`);
  return m[1]!;
}

function need(path: string): string {
  if (!existsSync(path)) throw new Error(`${path} is missing: run 'bash scripts/test-deps.sh'`);
  return path;
}

/** The standard-channel CRD files of the pinned module. */
export function gatewayApiCrdDir(): string {
  return need(join(binDir(), '..', `gateway-api-${gatewayApiVersion()}`, 'standard'));
}

export function conformanceBinary(): string {
  return need(join(binDir(), `gateway-api-conformance-${gatewayApiVersion()}`));
}

export function echoBasicBinary(): string {
  return need(join(binDir(), `echo-basic-${gatewayApiVersion()}`));
}

/** Gateway API standard CRDs + GatewayRoute + ConsulService, applied and Established. */
export async function installGatewayApiCrds(kube: KubeClient): Promise<void> {
  await kube.kubectl(['apply', '--server-side', '--force-conflicts', '-f', gatewayApiCrdDir()]);
  await kube.kubectl(['apply', '--server-side', '--force-conflicts', '-f', '-'], {
    input: `${gatewayRouteCrdYaml()}\n---\n${consulServiceCrdYaml()}`,
  });
  await kube.kubectl([
    'wait',
    '--for=condition=Established',
    '--timeout=60s',
    'crd/gatewayclasses.gateway.networking.k8s.io',
    'crd/gateways.gateway.networking.k8s.io',
    'crd/httproutes.gateway.networking.k8s.io',
    'crd/referencegrants.gateway.networking.k8s.io',
    'crd/gatewayroutes.edgegate.io',
    'crd/consulservices.edgegate.io',
  ]);
}
