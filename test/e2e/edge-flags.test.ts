/**
 * The edge defaults are configurable from the command line (src/dataplane/proxy/edge-flags.ts): the same requests that the
 * defaults refuse are served once their check is turned off, a lowered limit applies, and a bad value is a clear
 * configuration error naming the flag. Through `edgegate run --workers 2`, so the settings reach the workers.
 * The outlier flags are checked on a service whose only endpoint is dead: by default the 50 % cap refuses to eject
 * it; with the cap at 100 % it is ejected, and with `--outlier-consecutive-failures 0` nothing is even counted.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as h2connect } from 'node:http2';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
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
import { type Ports, rawOn, send } from '../support/transports.ts';
import { waitFor } from '../support/wait.ts';
import { makeCert } from './tls/helpers.ts';

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

  it('parser-level refusals (400/505) are counted by reason and logged sampled, not once per request', async () => {
    const send = (payload: string) => rawOn('HTTP/1.1', { port: strict.port, tlsPort: 0 }, payload);
    for (let i = 0; i < 30; i++)
      expect(await send('GET /x HTTP/1.1\nHost: a\n\n')).toMatch(/^HTTP\/1\.1 400 /);
    for (let i = 0; i < 5; i++)
      expect(await send('GET /x HTTP/3.0\r\nHost: a\r\n\r\n')).toMatch(/^HTTP\/1\.1 505 /);
    const prom = await scrapeMetrics(strict.adminUrl);
    expect(sumOf(prom, 'edgegate_requests_refused_total', { protocol: 'http1', reason: 'malformed' })).toBe(
      30,
    );
    expect(sumOf(prom, 'edgegate_requests_refused_total', { protocol: 'http1', reason: 'version' })).toBe(5);
    const lines = strict
      .output()
      .split('\n')
      .filter((l) => l.includes('request refused at the edge') && l.includes('"reason":"malformed"'));
    // One line per worker and 10 s window: 2 workers, a test far shorter than 10 s.
    expect(lines.length).toBeGreaterThanOrEqual(1);
    expect(lines.length).toBeLessThanOrEqual(2);
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

/**
 * The same flags on the HTTPS listener (issue 23 item 2): HTTP/1.1 over TLS and HTTP/2 get the header cap, the
 * connection cap, the header timeout (for HTTP/2: a session's first HEADERS; and the TLS handshake itself) and the
 * request-check switches of the HTTP listener. One worker, so the per-worker connection cap is the gateway's.
 */
describe('edge flags on the HTTPS listener (HTTP/1.1 over TLS and HTTP/2)', () => {
  const CAP = 4;
  let tlsGw: GatewayProcess;
  let ports: Ports;
  const held: TLSSocket[] = [];

  beforeAll(async () => {
    const site = makeCert(dir, 'site', 'test.local');
    const config = writeOneServiceConfig(join(dir, 'tls'), echo.port);
    const tlsPort = await freePort({ udp: false });
    tlsGw = await startGateway([
      ...['--routes', config.routes, '--catalog', config.catalog, '--workers', '1'],
      ...['--listen-tls', `127.0.0.1:${tlsPort}`, '--tls-default-cert', `${site.cert},${site.key}`],
      ...[
        '--allow-underscore-headers',
        '--max-request-headers',
        '12',
        '--max-client-connections',
        String(CAP),
      ],
      ...['--client-header-timeout', '1s'],
    ]);
    ports = { port: tlsGw.port, tlsPort };
  });

  afterAll(async () => {
    for (const s of held) s.destroy();
    await tlsGw?.stop();
  });

  it.each(['HTTP/1.1 over TLS', 'HTTP/2'] as const)(
    '%s: --allow-underscore-headers and --max-request-headers apply',
    async (t) => {
      expect((await send(t, ports, { target: '/x', headers: [['x_user', '1']] })).status).toBe(200);
      const many = Array.from({ length: 16 }, (_, i): [string, string] => [`x-h${i}`, '1']);
      expect((await send(t, ports, { target: '/x', headers: many })).status).toBe(431);
      expect((await send(t, ports, { target: '/x', headers: many.slice(0, 4) })).status).toBe(200);
    },
  );

  it('--max-client-connections caps HTTPS connections too; the refused ones are counted', async () => {
    const open = () =>
      new Promise<TLSSocket | undefined>((resolve) => {
        const s = tlsConnect({ host: '127.0.0.1', port: ports.tlsPort, rejectUnauthorized: false });
        s.once('secureConnect', () => resolve(s));
        s.once('error', () => resolve(undefined));
        s.once('close', () => resolve(undefined));
      });
    for (let i = 0; i < CAP; i++) {
      const s = await open();
      expect(s).toBeDefined();
      held.push(s!);
    }
    // Over the cap: closed at accept, no handshake.
    expect(await open()).toBeUndefined();
    held.pop()!.destroy();
    const again = await waitFor(open, { timeoutMs: 10_000, message: 'a connection below the cap' });
    held.push(again);
    const prom = await scrapeMetrics(tlsGw.adminUrl);
    expect(
      sumOf(prom, 'edgegate_requests_refused_total', { protocol: 'https1', reason: 'max_connections' }),
    ).toBeGreaterThanOrEqual(1);
    for (const s of held.splice(0)) s.destroy();
  });

  it('--client-header-timeout: a TLS handshake, an HTTP/1.1 head and an HTTP/2 session that never come are cut', async () => {
    // Not even a ClientHello: the handshake bound is the header timeout (1 s, not the 10 s handshake default).
    const silent = netConnect(ports.tlsPort, '127.0.0.1');
    silent.on('error', () => {});
    // Half a request head over TLS: 408.
    const partial = tlsConnect({ host: '127.0.0.1', port: ports.tlsPort, rejectUnauthorized: false });
    let partialAnswer = '';
    partial.on('secureConnect', () => partial.write('GET /x HTTP/1.1\r\nHost: test.local\r\n'));
    partial.on('data', (c: Buffer) => {
      partialAnswer += c.toString('latin1');
    });
    partial.on('error', () => {});
    // An HTTP/2 session that sends SETTINGS and PINGs but no request.
    const session = h2connect(`https://127.0.0.1:${ports.tlsPort}`, { rejectUnauthorized: false });
    session.on('error', () => {});
    const pinger = setInterval(() => {
      if (!session.destroyed) session.ping(() => {});
    }, 200);
    const closed = (e: NodeJS.EventEmitter) =>
      new Promise<number>((r) => e.once('close', () => r(Date.now())));
    const started = Date.now();
    const [a, b, c] = await Promise.all([closed(silent), closed(partial), closed(session)]);
    clearInterval(pinger);
    // Well under the 15 s default and the 75 s idle timeout that applied before.
    for (const at of [a, b, c]) expect(at - started).toBeLessThan(8_000);
    expect(partialAnswer).toMatch(/^HTTP\/1\.1 408 /);
    const prom = await scrapeMetrics(tlsGw.adminUrl);
    expect(
      sumOf(prom, 'edgegate_requests_refused_total', { protocol: 'h2', reason: 'header_timeout' }),
    ).toBeGreaterThanOrEqual(1);
    expect(
      sumOf(prom, 'edgegate_requests_refused_total', { protocol: 'https1', reason: 'header_timeout' }),
    ).toBeGreaterThanOrEqual(1);
  });
});
