// Catastrophic and non-linear regular expressions from the API server: the CRD's CEL rule (RE2 syntax) refuses
// backreferences and lookaround at `kubectl apply`; what RE2 accepts but the linear engine cannot run (counts above
// 16, \pL) is admitted by the API server and refused by the controller: Accepted=False naming the field, not
// served. A catastrophic-but-linear pattern is served and answers a hostile path correctly.
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningGateway } from '../../../src/run.ts';
import { createEchoServer } from '../../../src/tools/echo-server.ts';
import { kubeLogs, printLogsOnFailure } from '../../support/logs.ts';
import { sharedKube } from '../../support/shared.ts';
import { waitFor } from '../../support/wait.ts';
import {
  apply,
  catalogFile,
  ensureNamespace,
  get,
  installCrd,
  rand,
  routeYaml,
  startGateway,
  waitForCondition,
} from './helpers.ts';

const kube = sharedKube();
printLogsOnFailure(() => kubeLogs(kube));
const ns = `eg-regex-${rand()}`;
const echo = createEchoServer({ name: 'regex-echo' });
let gw: RunningGateway;
let port = 0;
const backends = [{ consul: { service: 'echo', datacenter: 'dc1' } }];

beforeAll(async () => {
  await installCrd(kube);
  await ensureNamespace(kube, ns);
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  gw = await startGateway(
    kube.kubeconfigPath,
    { namespaces: [ns], leaseNamespace: ns, identity: 'regex-test' },
    catalogFile((echo.address() as AddressInfo).port),
  );
  port = gw.proxyAddress.port;
});

afterAll(async () => {
  await gw?.stop();
  echo.close();
  await kube.kubectl(['delete', 'namespace', ns, '--wait=false'], { allowFailure: true });
});

describe('route regexes from the API server', () => {
  it.each([
    [
      'a backreference in a path',
      { path: { type: 'RegularExpression', value: '/(a)\\1' } },
      /matches\[0\]\.path/,
    ],
    [
      'a lookahead in a header',
      { headers: [{ type: 'RegularExpression', name: 'x', value: '(?=a)a' }] },
      /matches\[0\]\.headers\[0\]/,
    ],
    [
      'a lookbehind in a query parameter',
      { queryParams: [{ type: 'RegularExpression', name: 'q', value: '(?<!a)b' }] },
      /matches\[0\]\.queryParams\[0\]/,
    ],
  ])('kubectl apply refuses %s (CEL: RE2 syntax)', async (_name, match, field) => {
    const r = await kube.kubectl(['apply', '-f', '-'], {
      input: routeYaml(ns, `refused-${rand()}`, { rules: [{ matches: [match], backends }] }),
      allowFailure: true,
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(field);
    expect(r.stderr).toMatch(/valid regular expression/);
  });

  it('what RE2 accepts but the linear engine cannot run is Accepted=False naming the field, and not served', async () => {
    await apply(
      kube,
      routeYaml(ns, 'counted', {
        hostnames: ['counted.example.com'],
        rules: [
          { matches: [{ path: { type: 'RegularExpression', value: '/id/[0-9]{32}' } }], backends },
          {
            matches: [{ headers: [{ type: 'RegularExpression', name: 'x-lang', value: '\\pL+' }] }],
            backends,
          },
        ],
      }),
    );
    const c = await waitForCondition(kube, ns, 'counted', 'Accepted', 'False');
    expect(c.message).toMatch(
      /spec\.rules\[0\]\.matches\[0\]\.path\.value: invalid regular expression: .*counted repetition/,
    );
    expect(c.message).toMatch(/spec\.rules\[1\]\.matches\[0\]\.headers\[0\]\.value: .*escape \\p/);
    expect((await get(port, 'counted.example.com', `/id/${'1'.repeat(32)}`)).status).toBe(404);
  });

  it('a catastrophic-but-linear pattern is served and answers a hostile path correctly', async () => {
    await apply(
      kube,
      routeYaml(ns, 'nested', {
        hostnames: ['nested.example.com'],
        rules: [{ matches: [{ path: { type: 'RegularExpression', value: '/n/(a+)+' } }], backends }],
      }),
    );
    await waitForCondition(kube, ns, 'nested', 'Accepted', 'True');
    await waitFor(async () => (await get(port, 'nested.example.com', '/n/aaa')).status === 200, {
      timeoutMs: 15_000,
    });
    expect((await get(port, 'nested.example.com', `/n/${'a'.repeat(4000)}b`)).status).toBe(404);
    expect((await get(port, 'nested.example.com', `/n/${'a'.repeat(4000)}`)).status).toBe(200);
  });
});
