/**
 * What the gateway adds to a gRPC call and to opening a WebSocket (issue 21): real clients and servers on loopback,
 * the gateway as its own process (`edgegate run --workers 0 --h2c`, HTTPS listener with a self-signed certificate),
 * so the client's CPU is not the gateway's.
 *
 * - gRPC unary: a grpc-js client calls a grpc-js server (h2c) directly, and through the gateway (client h2c →
 *   gateway → upstream `protocol: h2c`; and client HTTP/2 over TLS → gateway). Sequential calls (latency p50/p99)
 *   and `--concurrency` calls in flight (calls/s), plus the gateway's CPU per call (/proc/<pid>/stat).
 * - WebSocket set-up: time from starting a connection to the open tunnel, for `--connects` sequential WebSockets —
 *   directly to the upstream (ws://), through the gateway's HTTP listener (ws://), its HTTPS listener over HTTP/1.1
 *   (wss://, a new TLS connection each), and over HTTP/2 as RFC 8441 streams on one TLS session.
 *
 *   node bench/grpc-websocket.bench.ts [--calls 5000] [--concurrency 32] [--connects 300]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as h2connect } from 'node:http2';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { makeCert } from '../test/e2e/tls/helpers.ts';
import { type EchoClient, echoClient, grpc, startGrpcEcho } from '../test/support/grpc.ts';
import { listen } from '../test/support/inproc-gateway.ts';
import { createWsEchoServer } from '../test/support/ws.ts';

const { values } = parseArgs({
  options: {
    calls: { type: 'string', default: '5000' },
    concurrency: { type: 'string', default: '32' },
    connects: { type: 'string', default: '300' },
  },
});
const CALLS = Number(values.calls);
const CONCURRENCY = Number(values.concurrency);
const CONNECTS = Number(values.connects);

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

/** utime + stime of a process, in ms (Linux). */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1000) / 100;
}

const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;

function unaryOnce(client: EchoClient): Promise<void> {
  return new Promise((resolve, reject) =>
    client.Unary({ text: 'bench' }, new grpc.Metadata(), {}, (err) => (err ? reject(err) : resolve())),
  );
}

async function grpcRun(name: string, client: EchoClient, gatewayPid: number | undefined) {
  for (let i = 0; i < 200; i++) await unaryOnce(client);
  const lat: number[] = [];
  const cpu0 = gatewayPid ? cpuMs(gatewayPid) : 0;
  for (let i = 0; i < Math.min(CALLS, 2000); i++) {
    const t0 = performance.now();
    await unaryOnce(client);
    lat.push(performance.now() - t0);
  }
  lat.sort((a, b) => a - b);
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next++ < CALLS) await unaryOnce(client);
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  const cpu = gatewayPid ? (cpuMs(gatewayPid) - cpu0) / (lat.length + CALLS) : undefined;
  return `| ${name} | ${pct(lat, 0.5).toFixed(3)} | ${pct(lat, 0.99).toFixed(3)} | ${Math.round(CALLS / secs)} | ${cpu === undefined ? '—' : (cpu * 1000).toFixed(0)} |`;
}

async function wsSetup(name: string, open: () => Promise<() => void>): Promise<string> {
  for (let i = 0; i < 20; i++) (await open())();
  const t: number[] = [];
  for (let i = 0; i < CONNECTS; i++) {
    const t0 = performance.now();
    const close = await open();
    t.push(performance.now() - t0);
    close();
  }
  t.sort((a, b) => a - b);
  return `| ${name} | ${pct(t, 0.5).toFixed(3)} | ${pct(t, 0.99).toFixed(3)} |`;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'eg-grpc-ws-bench-'));
  const cert = makeCert(dir, 'gw', 'bench.test');
  const grpcUp = await startGrpcEcho('bench');
  const wsUp = createWsEchoServer();
  const wsPort = await listen(wsUp);
  writeFileSync(
    join(dir, 'routes.yaml'),
    `apiVersion: edgegate.io/v1alpha1
kind: GatewayRoute
metadata: { name: bench, namespace: default }
spec:
  rules:
    - matches: [{ path: { type: PathPrefix, value: /test.Echo/ } }]
      backends: [{ consul: { service: grpc, datacenter: dc1 }, protocol: h2c }]
    - matches: [{ path: { type: PathPrefix, value: /ws } }]
      backends: [{ consul: { service: ws, datacenter: dc1 } }]
`,
  );
  writeFileSync(
    join(dir, 'catalog.yaml'),
    `datacenters:\n  dc1:\n    services:\n      grpc:\n        - { address: 127.0.0.1, port: ${grpcUp.port} }\n      ws:\n        - { address: 127.0.0.1, port: ${wsPort} }\n`,
  );
  const [port, tlsPort, adminPort] = [await freePort(), await freePort(), await freePort()];
  const gw: ChildProcess = spawn(
    process.execPath,
    [
      join(import.meta.dirname, '..', 'cmd', 'edgegate.ts'),
      'run',
      '--routes',
      join(dir, 'routes.yaml'),
      '--catalog',
      join(dir, 'catalog.yaml'),
      '--listen',
      `127.0.0.1:${port}`,
      '--listen-tls',
      `127.0.0.1:${tlsPort}`,
      '--tls-cert',
      `${cert.cert},${cert.key}`,
      '--tls-default-cert',
      `${cert.cert},${cert.key}`,
      '--admin',
      `127.0.0.1:${adminPort}`,
      '--workers',
      '0',
      '--h2c',
    ],
    { stdio: 'ignore', env: { ...process.env, EDGEGATE_LOG_LEVEL: 'warn' } },
  );
  try {
    for (let i = 0; ; i++) {
      const ok = await fetch(`http://127.0.0.1:${adminPort}/readyz`).then(
        (r) => r.status === 200,
        () => false,
      );
      if (ok) break;
      if (i > 300) throw new Error('the gateway did not become ready');
      await new Promise((r) => setTimeout(r, 100));
    }
    const pid = gw.pid!;
    const rows = [
      '| gRPC unary (grpc-js) | p50 ms | p99 ms | calls/s | gateway CPU µs/call |',
      '| --- | --- | --- | --- | --- |',
    ];
    const direct = echoClient(grpcUp.port);
    rows.push(await grpcRun('direct (h2c)', direct, undefined));
    const viaH2c = echoClient(port);
    rows.push(await grpcRun('through the gateway: h2c → h2c', viaH2c, pid));
    const viaTls = echoClient(tlsPort, { caPem: cert.certPem, serverName: 'bench.test' });
    rows.push(await grpcRun('through the gateway: HTTP/2 + TLS → h2c', viaTls, pid));
    for (const c of [direct, viaH2c, viaTls]) c.close();

    rows.push('', '| WebSocket set-up | p50 ms | p99 ms |', '| --- | --- | --- |');
    const wsOpen =
      (url: string, opts: WebSocket.ClientOptions = {}) =>
      async () => {
        const ws = new WebSocket(url, opts);
        await once(ws, 'open');
        return () => ws.terminate();
      };
    rows.push(await wsSetup('direct ws://', wsOpen(`ws://127.0.0.1:${wsPort}/ws`)));
    rows.push(await wsSetup('gateway ws:// (HTTP listener)', wsOpen(`ws://127.0.0.1:${port}/ws`)));
    rows.push(
      await wsSetup(
        'gateway wss:// (HTTP/1.1, new TLS connection each)',
        wsOpen(`wss://127.0.0.1:${tlsPort}/ws`, {
          ca: cert.certPem,
          servername: 'bench.test',
        } as WebSocket.ClientOptions),
      ),
    );
    const session = h2connect(`https://127.0.0.1:${tlsPort}`, { ca: cert.certPem, servername: 'bench.test' });
    await once(session, 'remoteSettings');
    rows.push(
      await wsSetup('gateway wss over HTTP/2 (RFC 8441 stream, one session)', async () => {
        const st = session.request(
          {
            ':method': 'CONNECT',
            ':protocol': 'websocket',
            ':scheme': 'https',
            ':path': '/ws',
            ':authority': 'bench.test',
            'sec-websocket-version': '13',
          },
          { endStream: false },
        );
        await once(st, 'response');
        return () => st.close();
      }),
    );
    session.close();
    console.log(rows.join('\n'));
  } finally {
    gw.kill('SIGTERM');
    await grpcUp.close();
    for (const t of wsUp.tunnels) t.destroy();
    wsUp.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
