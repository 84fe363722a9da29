/**
 * The image's runtime stage without Docker: compile as the build stage does (tsc -p tsconfig.build.json), install
 * production dependencies only into a clean directory with the Dockerfile's own script, copy dist/ beside them,
 * and run what the ENTRYPOINT runs — `--version`, then a short standalone `run` that proxies a request and drains
 * on SIGTERM. Catches a runtime import of a devDependency, a file missing from dist/, a broken bin path.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { request, type Server } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { createEchoServer } from '../../../src/tools/echo-server.ts';
import { REPO_ROOT } from '../../support/bins.ts';
import { freePorts } from '../../support/ports.ts';
import { runCommand, startProcess } from '../../support/proc.ts';
import { logPathFor, makeTempDir } from '../../support/tmp.ts';
import { StopWaiting, waitFor } from '../../support/wait.ts';

const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
  version: string;
  devDependencies: Record<string, string>;
  dependencies: Record<string, string>;
};
const app = makeTempDir('edgegate-image-app');
let echo: Server | undefined;

beforeAll(async () => {
  // Build stage: `npx tsc -p tsconfig.build.json`, here into the clean directory's dist/.
  const tsc = join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  execFileSync(
    process.execPath,
    [tsc, '-p', join(REPO_ROOT, 'tsconfig.build.json'), '--outDir', join(app, 'dist')],
    {
      cwd: REPO_ROOT,
      stdio: 'pipe',
    },
  );
  // Runtime stage: package.json + lock, production dependencies only, the Dockerfile's command.
  for (const f of ['package.json', 'package-lock.json']) cpSync(join(REPO_ROOT, f), join(app, f));
  const install = await runCommand(
    'npm',
    ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund'],
    {
      cwd: app,
      timeoutMs: 300_000,
    },
  );
  if (install.code !== 0) throw new Error(`production install failed:\n${install.stderr}\n${install.stdout}`);
}, 360_000);

afterAll(async () => {
  await new Promise<void>((resolve) => (echo ? echo.close(() => resolve()) : resolve()));
});

describe('the runtime stage of the image, without Docker', () => {
  it('the Dockerfile runs exactly these steps', () => {
    const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
    expect(dockerfile).toContain('RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund');
    expect(dockerfile).toContain('RUN npx tsc -p tsconfig.build.json');
    expect(dockerfile).toContain('COPY --from=build /app/dist ./dist');
    expect(dockerfile).toContain('ENTRYPOINT ["node", "dist/cmd/edgegate.js", "run"]');
    expect(dockerfile).toMatch(/^USER 1000:1000$/m);
    const runtime = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
    expect(runtime).toMatch(/^FROM \$\{NODE_BASE\}$/m);
    // The base's Node major, the `node` devDependency and `engines` always agree.
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
      engines: { node: string };
      devDependencies: Record<string, string>;
    };
    const major = /^ARG NODE_BASE=node:(\d+)-slim$/m.exec(dockerfile)?.[1];
    expect(major, 'ARG NODE_BASE=node:<major>-slim').toBeDefined();
    expect(pkg.devDependencies.node?.split('.')[0]).toBe(major);
    expect(pkg.engines.node).toBe(`>=${major} <${Number(major) + 1}`);
    expect(process.versions.node.split('.')[0]).toBe(major);
  });

  it('has production dependencies only', () => {
    // The lockfile marks what only devDependencies need ("dev": true): none of it, and all of the rest, is there.
    const lock = JSON.parse(readFileSync(join(REPO_ROOT, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { dev?: boolean; optional?: boolean }>;
    };
    const devOnly = Object.entries(lock.packages).filter(([p, e]) => p && e.dev);
    const prod = Object.entries(lock.packages).filter(([p, e]) => p && !e.dev && !e.optional);
    expect(devOnly.length).toBeGreaterThan(0);
    expect(devOnly.filter(([p]) => existsSync(join(app, p))).map(([p]) => p)).toEqual([]);
    expect(prod.filter(([p]) => !existsSync(join(app, p))).map(([p]) => p)).toEqual([]);
    for (const dev of ['typescript', 'vitest', '@biomejs/biome', 'fast-check', 'node'])
      expect(existsSync(join(app, 'node_modules', dev)), `devDependency ${dev} installed`).toBe(false);
    expect(existsSync(join(app, 'dist', 'cmd', 'edgegate.js'))).toBe(true);
  });

  it('prints its version', async () => {
    const r = await runCommand(process.execPath, ['dist/cmd/edgegate.js', '--version'], { cwd: app });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe(pkg.version);
  });

  it('runs standalone from a routes file, proxies a request, and drains on SIGTERM', async () => {
    const [echoPort, httpPort, adminPort] = await freePorts(3);
    echo = createEchoServer({ name: 'image-echo' });
    await new Promise<void>((resolve) => echo!.listen(echoPort, '127.0.0.1', resolve));
    const dir = makeTempDir('edgegate-image-run');
    writeFileSync(
      join(dir, 'routes.yaml'),
      stringify({
        apiVersion: 'edgegate.io/v1alpha1',
        kind: 'GatewayRoute',
        metadata: { name: 'hello', namespace: 'default' },
        spec: {
          hostnames: ['hello.example.com'],
          rules: [{ backends: [{ consul: { service: 'echo', datacenter: 'dc1' } }] }],
        },
      }),
    );
    writeFileSync(
      join(dir, 'catalog.yaml'),
      stringify({ datacenters: { dc1: { services: { echo: [{ address: '127.0.0.1', port: echoPort }] } } } }),
    );
    // The ENTRYPOINT, from the app directory, with the clean environment a container has.
    const gw = startProcess({
      name: 'edgegate-image',
      command: process.execPath,
      args: [
        'dist/cmd/edgegate.js',
        'run',
        '--listen',
        `127.0.0.1:${httpPort}`,
        '--admin',
        `127.0.0.1:${adminPort}`,
        '--routes',
        join(dir, 'routes.yaml'),
        '--catalog',
        join(dir, 'catalog.yaml'),
        '--state-dir',
        join(dir, 'state'),
      ],
      env: { PATH: process.env.PATH, NODE_ENV: 'production', HOME: dir },
      cwd: app,
      logPath: logPathFor('edgegate-image'),
    });
    try {
      await waitFor(
        async () => {
          if (!gw.running()) throw new StopWaiting(`edgegate exited:\n${gw.tail(40)}`);
          const r = await fetch(`http://127.0.0.1:${adminPort}/readyz`).catch(() => undefined);
          return r?.status === 200;
        },
        { timeoutMs: 30_000, message: 'edgegate /readyz', diagnostics: () => gw.tail(40) },
      );
      // node:http, not fetch: fetch does not let a caller set Host.
      const res = await get(httpPort!, 'hello.example.com', '/anything');
      expect(res.status).toBe(200);
      expect((JSON.parse(res.body) as { name: string }).name).toBe('image-echo');
    } finally {
      const exit = await gw.stop(30_000);
      expect(exit.code, gw.tail(20)).toBe(0);
    }
  });
});

function get(port: number, host: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.setTimeout(10_000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}
