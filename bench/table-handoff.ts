/**
 * Table hand-off cost for a large table (default 10,000 routes): how long from the primary's send to every
 * worker's acknowledgement, and how many bytes cross the IPC channel.
 *
 *   node bench/table-handoff.ts [routes=10000] [workers=2] [rounds=7]
 *
 * Part 1 measures the real path (ClusterPrimary + real proxy workers: JSON text over 'advanced' serialization,
 * JSON.parse + RoutingTable build + swap in the worker). Part 2 compares the four ways to send the same table
 * (object or JSON text × 'json' or 'advanced' serialization) with bare children that parse, build and ack.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serialize } from 'node:v8';
import { ClusterPrimary } from '../src/cluster/primary.ts';
import { compile } from '../src/compile/compile.ts';
import { readCatalogFile } from '../src/control/sources/file/file-source.ts';
import { silentLogger } from '../src/lib/log.ts';
import type { TableData } from '../src/table/types.ts';
import { encodeTableBody } from '../src/table/wire.ts';

const ROUTES = Number(process.argv[2] ?? 10_000);
const WORKERS = Number(process.argv[3] ?? 2);
const ROUNDS = Number(process.argv[4] ?? 7);
const SERVICES = 500;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (n: number) => n.toFixed(1);
const mib = (n: number) => `${(n / 1024 / 1024).toFixed(2)} MiB`;

async function buildTable(): Promise<TableData> {
  const dir = mkdtempSync(join(tmpdir(), 'edgegate-bench-'));
  const lines = ['datacenters:', '  dc1:', '    services:'];
  for (let s = 0; s < SERVICES; s++) {
    lines.push(`      s${s}:`);
    for (let k = 0; k < 3; k++)
      lines.push(`        - { address: 10.0.${s % 250}.${k + 1}, port: ${8000 + s}, tags: [edge] }`);
  }
  writeFileSync(join(dir, 'catalog.yaml'), lines.join('\n'));
  const catalog = await readCatalogFile(join(dir, 'catalog.yaml'));
  rmSync(dir, { recursive: true, force: true });
  const routes = Array.from({ length: ROUTES }, (_, i) => ({
    origin: `bench:${i}`,
    raw: {
      apiVersion: 'edgegate.io/v1alpha1',
      kind: 'GatewayRoute',
      metadata: { name: `r${i}`, namespace: `ns${i % 50}` },
      spec: {
        hostnames: [`h${i % 100}.example.com`],
        rules: [
          {
            matches: [
              {
                path: { type: 'PathPrefix', value: `/api/r${i}` },
                headers: [{ name: 'x-tenant', value: `t${i % 7}` }],
              },
            ],
            filters: [
              {
                type: 'RequestHeaderModifier',
                requestHeaderModifier: { set: [{ name: 'x-route', value: `r${i}` }] },
              },
            ],
            backends: [{ consul: { service: `s${i % SERVICES}`, datacenter: 'dc1' } }],
          },
        ],
      },
    },
  }));
  const started = performance.now();
  const { table, statuses } = compile({ routes, catalog });
  const bad = statuses.filter((s) => !s.accepted);
  if (bad.length > 0) throw new Error(`bench routes invalid: ${JSON.stringify(bad[0])}`);
  const compiled = performance.now() - started;
  const t0 = performance.now();
  encodeTableBody(table);
  console.log(
    `table: ${ROUTES} routes, ${table.entries.length} entries, ${table.clusters.length} clusters; compile ${fmt(compiled)} ms (of which encoding the bytes once: ~${fmt(performance.now() - t0)} ms)`,
  );
  return table;
}

async function realPath(table: TableData): Promise<void> {
  const primary = new ClusterPrimary({
    workers: WORKERS,
    log: silentLogger(),
    // Port 0 on loopback without SO_REUSEPORT: each worker just needs somewhere to listen.
    config: {
      host: '127.0.0.1',
      port: 0,
      reusePort: false,
      proxy: {},
      listener: {},
      logLevel: 'error',
      drain: { delayMs: 0, timeoutMs: 1000 },
    },
  });
  primary.start();
  const ms: number[] = [];
  const apply: number[] = [];
  let bytes = 0;
  for (let v = 1; v <= ROUNDS + 1; v++) {
    const t0 = performance.now();
    // The same table object each round, as the controller publishes the object compile made: its bytes were
    // encoded once, by compile (table/wire.ts), and publish sends them as they are.
    table.version = v;
    primary.publish(table);
    const publishMs = performance.now() - t0;
    for (;;) {
      const h = primary.stats().lastHandoff;
      if (h?.version === v && primary.readiness().ready) {
        // Round 1 includes the workers' start-up; leave it out.
        if (v > 1) {
          ms.push(h.ms);
          apply.push(h.maxApplyMs);
        }
        bytes = h.bytes;
        if (v === 2) console.log(`  primary send (bytes encoded once, by compile): ${fmt(publishMs)} ms`);
        break;
      }
      await new Promise((r) => setTimeout(r, 2));
    }
  }
  console.log(
    `real path (${WORKERS} workers, JSON text, 'advanced' IPC): send → all acks median ${fmt(median(ms))} ms (min ${fmt(Math.min(...ms))}, max ${fmt(Math.max(...ms))}); worker parse+build+swap median ${fmt(median(apply))} ms; payload ${mib(bytes)} per worker`,
  );
  await primary.drain({ delayMs: 0, timeoutMs: 5000 });
}

async function variant(table: TableData, serialization: 'json' | 'advanced', asText: boolean): Promise<void> {
  const children: ChildProcess[] = [];
  for (let i = 0; i < WORKERS; i++) {
    const c = fork(new URL('./handoff-child.ts', import.meta.url), [], { serialization });
    await new Promise<void>((r) => c.once('message', () => r()));
    children.push(c);
  }
  const ms: number[] = [];
  let bytes = 0;
  for (let v = 1; v <= ROUNDS; v++) {
    const t0 = performance.now();
    const json = asText ? JSON.stringify(table) : undefined;
    const msg = asText ? { version: v, json } : { version: v, table };
    if (v === 1)
      bytes = serialization === 'json' ? Buffer.byteLength(JSON.stringify(msg)) : serialize(msg).length;
    const acks = children.map((c) => new Promise<void>((r) => c.once('message', () => r())));
    for (const c of children) c.send(msg);
    await Promise.all(acks);
    ms.push(performance.now() - t0);
  }
  for (const c of children) c.kill();
  console.log(
    `  ${asText ? 'JSON text' : 'object   '} over '${serialization}'${serialization === 'json' ? '    ' : ''}: median ${fmt(median(ms))} ms (min ${fmt(Math.min(...ms))}), ${mib(bytes)} on the wire per worker`,
  );
}

const table = await buildTable();
await realPath(table);
console.log(
  `variants (${WORKERS} bare children: parse + RoutingTable build + ack; includes the primary's serialization):`,
);
for (const [s, text] of [
  ['json', false],
  ['json', true],
  ['advanced', false],
  ['advanced', true],
] as const)
  await variant(table, s, text);
process.exit(0);
