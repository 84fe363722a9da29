/**
 * `npm start`: the standalone demo. Starts an `edgegate echo` upstream for every loopback instance in
 * examples/catalog.yaml, then `edgegate run` with examples/routes and that catalog.
 *
 * Environment: EDGEGATE_LISTEN / EDGEGATE_ADMIN as for `run`; EDGEGATE_DEMO_PORT_OFFSET shifts the echo ports
 * (the catalog is rewritten to a temp file), so tests can run the demo beside other servers.
 */
import { spawn } from 'node:child_process';
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

const children = upstreams.map((u) =>
  spawn(process.execPath, [cli, 'echo', '--listen', `127.0.0.1:${u.port}`, '--name', u.name], {
    stdio: 'inherit',
  }),
);
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

const stop = () => {
  for (const c of children) c.kill('SIGTERM');
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
gateway.on('exit', (code) => {
  stop();
  process.exitCode = code ?? 0;
});
process.stdout.write(
  `edgegate demo: ${upstreams.length} echo upstreams; try\n  curl localhost:${(process.env.EDGEGATE_LISTEN ?? ':8080').split(':').pop()}/dc1/echo/hello\n`,
);
