// The upstream Gateway API conformance suite (sigs.k8s.io/gateway-api/conformance at GATEWAY_API_VERSION, built by
// scripts/test-deps.sh) against edgegate installed with its chart on the real node: the pinned standard-channel
// CRDs, a GatewayClass for controllerName edgegate.io/gateway, the suite's echo backend image built locally from
// the same module (no registry), and the GATEWAY-HTTP profile with the features edgegate claims. The report the
// suite writes is kept in docs/conformance/ (README says which version and profile passed); every failing test
// is printed by name.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { binPath, REPO_ROOT } from '../../support/bins.ts';
import {
  conformanceBinary,
  ECHO_BASIC_IMAGES,
  echoBasicArchive,
  gatewayApiCrdDir,
  gatewayApiVersion,
} from '../../support/gateway-api.ts';
import { printLogsOnFailure } from '../../support/logs.ts';
import { sharedNode } from '../../support/node-client.ts';
import { runCommand } from '../../support/proc.ts';
import { logPathFor } from '../../support/tmp.ts';
import { installChart, uninstallChart, waitRollout } from './helpers.ts';

const node = sharedNode();
const rel = 'edge';
const ns = 'edgegate-conformance';
const GATEWAY_CLASS = 'edgegate';
/** What edgegate claims beyond the profile's core (docs/gateway-api.md lists why the others are not). */
export const SUPPORTED_FEATURES = [
  'Gateway',
  'HTTPRoute',
  'ReferenceGrant',
  // Extended features edgegate has (matches, filters and timeouts of GatewayRoute, which HTTPRoutes translate to).
  'HTTPRouteQueryParamMatching',
  'HTTPRouteResponseHeaderModification',
  'HTTPRoutePortRedirect',
  'HTTPRouteSchemeRedirect',
  'HTTPRoutePathRedirect',
  'HTTPRouteHostRewrite',
  'HTTPRoutePathRewrite',
  'HTTPRouteRequestTimeout',
  'HTTPRouteBackendTimeout',
  'HTTPRouteNamedRouteRule',
  'HTTPRoute303RedirectStatusCode',
  'HTTPRoute307RedirectStatusCode',
  'HTTPRoute308RedirectStatusCode',
  'HTTPRouteBackendProtocolWebSocket',
];
/** The suite's namespaces: the chart reads TLS Secrets in these (HTTPS listeners, cross-namespace certificates). */
const SUITE_NAMESPACES = [
  'gateway-conformance-infra',
  'gateway-conformance-app-backend',
  'gateway-conformance-web-backend',
];
const logPath = logPathFor('gateway-api-conformance');
/**
 * Gateways are isolated by address (HTTPRouteMultipleGateways: two Gateways, one port, one path each): the node
 * gets more addresses, link-local ones in a /24 of this run (169.254.169.0/24, the metadata range, excluded), on its
 * veth end, routed from the host through the veth (the route goes away with the veth at the latest). Enough for
 * the Gateways the suite has at once.
 */
const EXTRA_BLOCK = `169.254.${1 + Math.floor(Math.random() * 168)}`;
const EXTRA_ADDRESSES = Array.from({ length: 40 }, (_, i) => `${EXTRA_BLOCK}.${10 + i}`);
let hostIf: string | undefined;

/** The interface that holds `address` (`ip -o -4 addr`), on the host or, with `run`, inside the node. */
async function interfaceOf(address: string, inNode: boolean): Promise<string> {
  const r = inNode
    ? await node.run('ip', ['-o', '-4', 'addr', 'show'])
    : await runCommand('ip', ['-o', '-4', 'addr', 'show']);
  const line = r.stdout.split('\n').find((l) => l.includes(` ${address}/`));
  const name = line?.split(/\s+/)[1]?.replace(/@.*/, '');
  if (!name) throw new Error(`no interface holds ${address}:\n${r.stdout}`);
  return name;
}
let release: () => Promise<void> = async () => {};
printLogsOnFailure(() => [...node.logs(), { name: 'conformance', logPath }], 200);

beforeAll(async () => {
  release = await node.lease('gateway-api-conformance.test.ts');
  // The echo backend image, under the names the suite's manifests use.
  const archive = await echoBasicArchive();
  const ctr = (args: string[]) =>
    node.run(binPath('ctr'), ['--address', join(node.dir, 'containerd.sock'), '-n', 'k8s.io', ...args], {
      timeoutMs: 300_000,
    });
  const imported = await ctr(['images', 'import', '--no-unpack=false', archive]);
  expect(imported.code, imported.stderr).toBe(0);
  // The base manifests also run a coredns Deployment, used only by the UDPRoute tests (not in GATEWAY-HTTP), and the
  // suite waits for every base pod to run. No registry is reachable: the pod runs the echo backend under
  // coredns's image name (echo-basic ignores its arguments). No test of this profile talks to it.
  for (const name of [...ECHO_BASIC_IMAGES.slice(1), 'registry.k8s.io/coredns/coredns:v1.12.2']) {
    const tagged = await ctr(['images', 'tag', '--force', ECHO_BASIC_IMAGES[0]!, name]);
    expect(tagged.code, tagged.stderr).toBe(0);
  }
  const nodeIf = await interfaceOf(node.nodeIp, true);
  for (const a of EXTRA_ADDRESSES) {
    const r = await node.run('ip', ['addr', 'add', `${a}/32`, 'dev', nodeIf]);
    expect(r.code, r.stderr).toBe(0);
  }
  hostIf = await interfaceOf(node.hostIp, false);
  const route = await runCommand('ip', ['route', 'replace', `${EXTRA_BLOCK}.0/24`, 'dev', hostIf]);
  expect(route.code, route.stderr).toBe(0);
  await node.kube.kubectl(['apply', '--server-side', '--force-conflicts', '-f', gatewayApiCrdDir()]);
  for (const n of SUITE_NAMESPACES)
    await node.kube.kubectl(['create', 'namespace', n], { allowFailure: true });
  await installChart(node, rel, ns, {
    hostNetwork: true,
    gatewayApi: { enabled: true, extraAddresses: EXTRA_ADDRESSES },
    tls: { enabled: true, secretNamespaces: SUITE_NAMESPACES },
    consul: { enabled: false },
  });
  await waitRollout(node, ns, `${rel}-edgegate`);
  await node.kube.kubectl(['apply', '-f', '-'], {
    input: stringify({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'GatewayClass',
      metadata: { name: GATEWAY_CLASS },
      spec: { controllerName: 'edgegate.io/gateway' },
    }),
  });
}, 30 * 60_000);

afterAll(async () => {
  await node.kube.kubectl(['delete', 'gatewayclass', GATEWAY_CLASS, '--wait=false'], { allowFailure: true });
  await uninstallChart(node, rel, ns);
  if (hostIf) await runCommand('ip', ['route', 'del', `${EXTRA_BLOCK}.0/24`, 'dev', hostIf]);
  for (const n of SUITE_NAMESPACES)
    await node.kube.kubectl(['delete', 'namespace', n, '--wait=false'], { allowFailure: true });
  await release();
});

/**
 * The suite's report goes to docs/conformance/ when it differs from the one there in more than its `date`: a run
 * with the same results leaves the committed report (and the working tree) as they were.
 */
function publishReport(fresh: string, committed: string): void {
  const text = readFileSync(fresh, 'utf8');
  const undated = (t: string) => t.replace(/^date: .*$/m, '');
  let prior: string | undefined;
  try {
    prior = readFileSync(committed, 'utf8');
  } catch {
    prior = undefined;
  }
  if (prior === undefined || undated(prior) !== undated(text)) writeFileSync(committed, text);
}

interface Report {
  gatewayAPIVersion: string;
  profiles: { name: string; core: { result: string; failedTests?: string[]; statistics?: unknown } }[];
}

it(
  'passes the GATEWAY-HTTP profile of the Gateway API conformance suite',
  async () => {
    const version = gatewayApiVersion();
    const dir = join(REPO_ROOT, 'docs', 'conformance');
    mkdirSync(dir, { recursive: true });
    const committedPath = join(dir, `gateway-api-${version}-edgegate-report.yaml`);
    // Written next to the log first; docs/ gets it only when it says something new (publishReport).
    const reportPath = `${logPath}.report.yaml`;
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    const res = await runCommand(
      conformanceBinary(),
      [
        '-test.v',
        '-test.timeout=60m',
        '-test.run=TestConformance',
        `-gateway-class=${GATEWAY_CLASS}`,
        '-conformance-profiles=GATEWAY-HTTP',
        `-supported-features=${SUPPORTED_FEATURES.join(',')}`,
        '-organization=edgegate',
        '-project=edgegate',
        '-url=https://github.com/edgegate/edgegate',
        `-version=v${pkg.version}`,
        '-contact=https://github.com/edgegate/edgegate/issues',
        `-report-output=${reportPath}`,
        '-cleanup-base-resources=true',
      ],
      {
        env: { ...process.env, KUBECONFIG: node.kube.kubeconfigPath },
        timeoutMs: 65 * 60_000,
      },
    );
    writeFileSync(logPath, res.stdout + res.stderr);
    const failed = [...res.stdout.matchAll(/^\s*--- FAIL: (\S+)/gm)].map((m) => m[1]);
    const passed = [...res.stdout.matchAll(/^\s*--- PASS: (\S+)/gm)].map((m) => m[1]);
    console.log(
      `Gateway API ${version} conformance (GATEWAY-HTTP): ${passed.length} passed, ${failed.length} failed` +
        (failed.length ? `\nfailed:\n  ${failed.join('\n  ')}` : ''),
    );
    expect(failed, `conformance log: ${logPath}`).toEqual([]);
    expect(res.code, `conformance log: ${logPath}`).toBe(0);
    const report = parse(readFileSync(reportPath, 'utf8')) as Report;
    expect(report.gatewayAPIVersion).toBe(version);
    const http = report.profiles.find((p) => p.name === 'GATEWAY-HTTP');
    expect(http?.core.result).toBe('success');
    publishReport(reportPath, committedPath);
  },
  70 * 60_000,
);
