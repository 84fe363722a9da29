/**
 * `npm start`: the standalone demo. Starts an `edgegate echo` upstream for every loopback instance in
 * examples/catalog.yaml, waits until each listens, then `edgegate run` with examples/routes and that catalog.
 *
 * Environment: EDGEGATE_LISTEN / EDGEGATE_ADMIN as for `run`; EDGEGATE_DEMO_PORT_OFFSET shifts the echo ports
 * (the catalog is rewritten to a temp file), so tests can run the demo beside other servers.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(root, 'cmd', 'edgegate.ts');
const offset = Number(process.env.EDGEGATE_DEMO_PORT_OFFSET ?? 0);

type Instance = { address: string; port: number; health?: string };
const catalog = parse(readFileSync(join(root, 'examples', 'catalog.yaml'), 'utf8')) as {
  datacenters: Record<string, { services: Record<string, Instance[]> }>;
};
const upstreams: { name: string; port: number }[] = [];
for (const [dc, body] of Object.entries(catalog.datacenters)) {
  for (const [svc, instances] of Object.entries(body.services)) {
    instances.forEach((i, n) => {
      i.port += offset;
      if (i.address === '127.0.0.1') upstreams.push({ name: `${svc}-${dc}-${n + 1}`, port: i.port });
    });
  }
}
let catalogFile = join(root, 'examples', 'catalog.yaml');
if (offset !== 0) {
  catalogFile = join(mkdtempSync(join(tmpdir(), 'edgegate-demo-')), 'catalog.yaml');
  writeFileSync(catalogFile, stringify(catalog));
}

const children: ChildProcess[] = [];
let stopping = false;
const stop = () => {
  stopping = true;
  for (const c of children) c.kill('SIGTERM');
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);

/** Starts one echo upstream; resolves once it says it listens, rejects if it exits first (port taken). */
function startEcho(u: { name: string; port: number }): Promise<void> {
  const child = spawn(process.execPath, [cli, 'echo', '--listen', `127.0.0.1:${u.port}`, '--name', u.name], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  return new Promise((resolve, reject) => {
    let seen = '';
    child.stdout.on('data', (d: Buffer) => {
      process.stdout.write(d);
      seen += d;
      if (seen.includes('listening on')) resolve();
    });
    child.once('exit', (code) =>
      reject(
        new Error(`echo upstream ${u.name} on 127.0.0.1:${u.port} exited (code ${code}) before listening`),
      ),
    );
  });
}

// The gateway starts only once every upstream listens, so the first curl never meets a closed port.
try {
  await Promise.all(upstreams.map(startEcho));
} catch (err) {
  if (!stopping) process.stderr.write(`edgegate demo: ${(err as Error).message}\n`);
  const code = stopping ? 0 : 1;
  stop();
  process.exit(code);
}

const gateway = spawn(
  process.execPath,
  [cli, 'run', '--routes', join(root, 'examples', 'routes'), '--catalog', catalogFile],
  // Two proxy workers: the real process model, small enough for a laptop; a short drain so Ctrl-C is quick.
  {
    stdio: 'inherit',
    env: {
      ...process.env,
      EDGEGATE_WORKERS: process.env.EDGEGATE_WORKERS ?? '2',
      EDGEGATE_DRAIN_DELAY: process.env.EDGEGATE_DRAIN_DELAY ?? '1s',
    },
  },
);
children.push(gateway);
gateway.on('exit', (code) => {
  stop();
  process.exitCode = code ?? 0;
});
process.stdout.write(
  `edgegate demo: ${upstreams.length} echo upstreams; try\n  curl localhost:${(process.env.EDGEGATE_LISTEN ?? ':8080').split(':').pop()}/dc1/echo/hello\n`,
);
