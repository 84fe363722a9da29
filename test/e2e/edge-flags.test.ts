/**
 * The edge defaults are configurable from the command line (src/proxy/edge-flags.ts): the same requests that the
 * defaults refuse are served once their check is turned off, a lowered limit applies, and a bad value is a clear
 * configuration error naming the flag. Through `edgegate run --workers 2`, so the settings reach the workers.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLI,
  type EchoUpstream,
  type GatewayProcess,
  startEcho,
  startGateway,
  writeOneServiceConfig,
} from '../support/gateway.ts';

let echo: EchoUpstream;
let strict: GatewayProcess;
let relaxed: GatewayProcess;
let dir: string;

beforeAll(async () => {
  echo = await startEcho('edge-flags');
  dir = mkdtempSync(join(tmpdir(), 'eg-edge-flags-'));
  const config = writeOneServiceConfig(dir, echo.port);
  const base = ['--routes', config.routes, '--catalog', config.catalog, '--workers', '2'];
  strict = await startGateway(base);
  relaxed = await startGateway([
    ...base,
    '--allow-underscore-headers',
    '--allow-encoded-slash',
    '--max-request-headers',
    '12',
  ]);
});

afterAll(async () => {
  await strict?.stop();
  await relaxed?.stop();
  await echo?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function status(
  gw: GatewayProcess,
  path: string,
  headers: Record<string, string> = {},
): Promise<number> {
  const r = await fetch(`${gw.url}${path}`, { headers });
  await r.arrayBuffer();
  return r.status;
}

describe('edge flags', () => {
  it('--allow-underscore-headers and --allow-encoded-slash turn those checks off', async () => {
    expect(await status(strict, '/x', { x_user: '1' })).toBe(400);
    expect(await status(relaxed, '/x', { x_user: '1' })).toBe(200);
    expect(await status(strict, '/a%2Fb')).toBe(400);
    expect(await status(relaxed, '/a%2Fb')).toBe(200);
  });

  it('--max-request-headers lowers the header cap (431 above it)', async () => {
    // fetch sends about 7 headers of its own (host, connection, accept, user-agent…): 16 more are over 12, under 100.
    const many = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`x-h${i}`, '1']));
    expect(await status(strict, '/x', many)).toBe(200);
    expect(await status(relaxed, '/x', many)).toBe(431);
  });

  it('a bad value is a configuration error naming the flag (exit 2)', () => {
    for (const [flag, value] of [
      ['--max-request-headers', 'many'],
      ['--client-header-timeout', 'soon'],
      ['--retry-budget-percent', '150'],
    ] as const) {
      const r = spawnSync(process.execPath, [CLI, 'run', '--routes', join(dir, 'routes'), flag, value], {
        encoding: 'utf8',
        timeout: 30_000,
      });
      expect(r.status).toBe(2);
      expect(r.stderr).toContain(flag);
    }
  });
});
