/**
 * The access log's sampling and off switch through `edgegate run --workers 2`: `--access-log-sample 0` logs no
 * ordinary request but every answer ≥ 500; `--access-log off` logs none at all; the default logs every request.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type EchoUpstream,
  type GatewayProcess,
  startEcho,
  startGateway,
  writeOneServiceConfig,
} from '../../support/gateway.ts';
import { waitFor } from '../../support/wait.ts';

let echo: EchoUpstream;
let dir: string;
const gateways: GatewayProcess[] = [];

beforeAll(async () => {
  echo = await startEcho('sampling');
  dir = mkdtempSync(join(tmpdir(), 'eg-access-sampling-'));
  writeOneServiceConfig(dir, echo.port);
});

afterAll(async () => {
  for (const g of gateways) await g.stop();
  await echo?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function gatewayWith(args: string[]): Promise<GatewayProcess> {
  const gw = await startGateway([
    '--routes',
    join(dir, 'routes'),
    '--catalog',
    join(dir, 'catalog.yaml'),
    '--workers',
    '2',
    ...args,
  ]);
  gateways.push(gw);
  return gw;
}

/** Sends 20 ordinary requests and 3 the upstream answers 503, each tagged; returns the tags logged. */
async function traffic(gw: GatewayProcess, tag: string): Promise<{ ok: string[]; failed: string[] }> {
  const ok = Array.from({ length: 20 }, (_, i) => `${tag}-ok-${i}`);
  const failed = Array.from({ length: 3 }, (_, i) => `${tag}-fail-${i}`);
  for (const id of ok) await (await fetch(`${gw.url}/x`, { headers: { 'x-request-id': id } })).arrayBuffer();
  for (const id of failed)
    await (await fetch(`${gw.url}/x?status=503`, { headers: { 'x-request-id': id } })).arrayBuffer();
  return { ok, failed };
}

const logged = (gw: GatewayProcess, ids: string[]) =>
  ids.filter((id) => gw.output().includes(`"requestId":"${id}"`));

describe('access log sampling', () => {
  it('the default logs every request', async () => {
    const gw = await gatewayWith([]);
    const { ok, failed } = await traffic(gw, 'all');
    await waitFor(() => logged(gw, [...ok, ...failed]).length === 23, { timeoutMs: 5000 });
  });

  it('--access-log-sample 0 logs no ordinary request, but every answer >= 500', async () => {
    const gw = await gatewayWith(['--access-log-sample', '0']);
    const { ok, failed } = await traffic(gw, 'none');
    await waitFor(() => logged(gw, failed).length === 3, { timeoutMs: 5000 });
    expect(logged(gw, ok)).toEqual([]);
  });

  it('--access-log off logs nothing, errors included', async () => {
    const gw = await gatewayWith(['--access-log', 'off']);
    const { ok, failed } = await traffic(gw, 'off');
    // The ≥500 lines of the sampled gateway above show up within milliseconds; here a marker gateway that does
    // log (sample 0, a 503) is driven afterwards, and by the time its line is out, this one's would have been too.
    const marker = gateways[1]!;
    await (
      await fetch(`${marker.url}/x?status=503`, { headers: { 'x-request-id': 'off-marker' } })
    ).arrayBuffer();
    await waitFor(() => logged(marker, ['off-marker']).length === 1, { timeoutMs: 5000 });
    expect(logged(gw, [...ok, ...failed])).toEqual([]);
  });
});
