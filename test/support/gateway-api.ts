/**
 * The Gateway API pieces scripts/test-deps.sh provides at GATEWAY_API_VERSION (scripts/test-deps.versions): the
 * standard-channel CRDs, the conformance suite's test binary and its echo backend, and installing the CRDs (with
 * edgegate's own) into an API server.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { consulServiceCrdYaml } from '../../src/api/consul-service-crd.ts';
import { gatewayRouteCrdYaml } from '../../src/api/crd.ts';
import { binDir, VERSIONS_FILE } from './bins.ts';
import { type KubeClient, waitCrdsEstablished } from './kube.ts';
import { runCommand } from './proc.ts';

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
  await waitCrdsEstablished(kube, [
    'gatewayclasses.gateway.networking.k8s.io',
    'gateways.gateway.networking.k8s.io',
    'httproutes.gateway.networking.k8s.io',
    'referencegrants.gateway.networking.k8s.io',
    'gatewayroutes.edgegate.io',
    'consulservices.edgegate.io',
  ]);
}

/** The image names the conformance suite's manifests (conformance/base/manifests.yaml) give its echo backend. */
export const ECHO_BASIC_IMAGES = [
  'registry.k8s.io/gateway-api/echo-basic:v1.5.1',
  'registry.k8s.io/gateway-api/echo-basic:v1.6.0-dev.3',
];

/**
 * The suite's echo backend as an image archive, built without a registry: buildah from scratch + the echo-basic
 * binary test-deps built from the pinned module, user nonroot as upstream's Dockerfile; tagged with the first of
 * ECHO_BASIC_IMAGES (the node tags the others). Cached by the binary's hash; buildah's storage is the one
 * scripts/node-images.sh uses.
 */
export async function echoBasicArchive(): Promise<string> {
  const bin = echoBasicBinary();
  const hash = createHash('sha256').update(readFileSync(bin)).digest('hex').slice(0, 16);
  const cache = join(binDir(), '..');
  const archive = join(cache, 'images', `echo-basic-${gatewayApiVersion()}-${hash}.tar`);
  if (existsSync(archive)) return archive;
  mkdirSync(dirname(archive), { recursive: true });
  const storage = [
    '--root',
    join(cache, 'buildah', 'storage'),
    '--runroot',
    join(cache, 'buildah', 'runroot'),
    '--storage-driver',
    'overlay',
  ];
  const must = async (args: string[]) => {
    const r = await runCommand('buildah', [...storage, ...args], { timeoutMs: 300_000 });
    if (r.code !== 0) throw new Error(`buildah ${args.join(' ')} failed: ${r.stderr}${r.stdout}`);
    return r.stdout.trim();
  };
  const ctr = await must(['from', '--quiet', 'scratch']);
  try {
    await must(['copy', '--chmod', '0755', ctr, bin, '/echo-basic']);
    await must([
      'config',
      '--os',
      'linux',
      '--arch',
      'amd64',
      '--entrypoint',
      '["/echo-basic"]',
      '--user',
      '65532:65532',
      ctr,
    ]);
    await must(['commit', '--quiet', ctr, ECHO_BASIC_IMAGES[0]!]);
  } finally {
    await runCommand('buildah', [...storage, 'rm', ctr], { timeoutMs: 60_000 });
  }
  await must(['push', ECHO_BASIC_IMAGES[0]!, `docker-archive:${archive}.tmp:${ECHO_BASIC_IMAGES[0]}`]);
  renameSync(`${archive}.tmp`, archive);
  return archive;
}
