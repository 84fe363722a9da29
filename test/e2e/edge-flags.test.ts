/**
 * The edge defaults are configurable from the command line (src/dataplane/proxy/edge-flags.ts): the same requests that the
 * defaults refuse are served once their check is turned off, a lowered limit applies, and a bad value is a clear
 * configuration error naming the flag. Through `edgegate run --workers 2`, so the settings reach the workers.
 * The outlier flags are checked on a service whose only endpoint is dead: by default the 50 % cap refuses to eject
 * it; with the cap at 100 % it is ejected, and with `--outlier-consecutive-failures 0` nothing is even counted.
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
import { freePort } from '../support/ports.ts';
import { scrapeMetrics, sumOf } from '../support/prom-text.ts';

let echo: EchoUpstream;
let strict: GatewayProcess;
let relaxed: GatewayProcess;
let ejecting: GatewayProcess;
let neverEjecting: GatewayProcess;
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
  const dead = writeOneServiceConfig(join(dir, 'dead'), await freePort({ udp: false }), 'dead');
  const deadBase = ['--routes', dead.routes, '--catalog', dead.catalog, '--workers', '2'];
  [ejecting, neverEjecting] = await Promise.all([
    startGateway([
      ...deadBase,
      '--outlier-consecutive-failures',
      '2',
      '--outlier-max-ejection-percent',
      '100',
      '--outlier-base-ejection',
      '10m',
      '--outlier-max-ejection',
      '1h',
    ]),
    startGateway([
      ...deadBase,
      '--outlier-consecutive-failures',
      '0',
      '--outlier-max-ejection-percent',
      '100',
    ]),
  ]);
});

afterAll(async () => {
  await strict?.stop();
  await relaxed?.stop();
  await ejecting?.stop();
  await neverEjecting?.stop();
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
      ['--outlier-max-ejection-percent', '101'],
      ['--outlier-base-ejection', 'later'],
    ] as const) {
      const r = spawnSync(process.execPath, [CLI, 'run', '--routes', join(dir, 'routes'), flag, value], {
        encoding: 'utf8',
        timeout: 30_000,
      });
      expect(r.status).toBe(2);
      expect(r.stderr).toContain(flag);
    }
  });

  it('--outlier-max-ejection shorter than --outlier-base-ejection is refused naming both', () => {
    const r = spawnSync(
      process.execPath,
      [
        CLI,
        'run',
        '--routes',
        join(dir, 'routes'),
        '--outlier-base-ejection',
        '1m',
        '--outlier-max-ejection',
        '10s',
      ],
      { encoding: 'utf8', timeout: 30_000 },
    );
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(
      '--outlier-max-ejection (10000 ms) is shorter than --outlier-base-ejection (60000 ms)',
    );
  });

  it('--outlier-max-ejection-percent 100 ejects a lone dead endpoint; --outlier-consecutive-failures 0 never counts', async () => {
    const ejections = async (gw: GatewayProcess) => {
      const prom = await scrapeMetrics(gw.adminUrl);
      const labels = { service: 'dead', datacenter: 'dc1' };
      return [
        sumOf(prom, 'edgegate_outlier_ejections_total', labels),
        sumOf(prom, 'edgegate_outlier_ejections_refused_total', labels),
      ];
    };
    // 12 requests over 2 workers: one worker sees at least 6 failures in a row, enough to eject with the
    // default of 5 or with 2, so only --outlier-consecutive-failures 0 keeps neverEjecting at zero.
    for (let i = 0; i < 12; i++) {
      expect(await status(neverEjecting, '/x', { connection: 'close' })).toBe(502);
      // Ejected or not, the lone endpoint is still tried (panic mode), so the answer stays 502.
      expect(await status(ejecting, '/x', { connection: 'close' })).toBe(502);
    }
    const [ejected, refused] = await ejections(ejecting);
    expect(ejected).toBeGreaterThanOrEqual(1);
    expect(ejected).toBeLessThanOrEqual(2); // one per worker: ejected for 10 minutes
    expect(refused).toBe(0);
    expect(await ejections(neverEjecting)).toEqual([0, 0]);
  });
});
