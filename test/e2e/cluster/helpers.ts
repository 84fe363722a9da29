/**
 * Helpers for the process-model tests: real `edgegate echo` upstreams and a real `edgegate run` (primary + workers)
 * spawned through the CLI, a fixed free port (SO_REUSEPORT workers must all bind the same one), polling with a
 * deadline, and a small bounded keep-alive load generator.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { freePort as supportFreePort } from '../../support/ports.ts';
import { waitFor as waitForCondition } from '../../support/wait.ts';

export const root = fileURLToPath(new URL('../../..', import.meta.url));
export const cli = join(root, 'cmd', 'edgegate.ts');

/** test/support's waitFor, in the (what, check, timeout) shape these tests use. */
export function waitFor<T>(
  what: string,
  check: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  timeoutMs = 20_000,
  intervalMs = 25,
): Promise<T> {
  return waitForCondition(check, { timeoutMs, intervalMs, message: what });
}

/** A free TCP port on 127.0.0.1 (test/support's, never handed out twice). */
export function freePort(): Promise<number> {
  return supportFreePort({ udp: false });
}

export function tempDir(prefix: string): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface Proc {
  child: ChildProcess;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM (unless gone) and wait for the exit. */
  stop(): Promise<void>;
}

export function spawnCli(args: string[], env: NodeJS.ProcessEnv = {}, detached = false): Proc {
  const child = spawn(process.execPath, [cli, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    // Own process group, so a test can signal the primary and its workers at once, as Ctrl-C does.
    detached,
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  return {
    child,
    output: () => out,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

export interface Echo extends Proc {
  name: string;
  port: number;
}

export async function startEcho(name: string): Promise<Echo> {
  const port = await freePort();
  const p = spawnCli(['echo', '--listen', `127.0.0.1:${port}`, '--name', name]);
  await waitFor(`echo ${name} to listen`, () => p.output().includes('listening on'));
  return { ...p, name, port };
}

export interface WorkersView {
  version: number;
  restarts: number;
  live: number;
  listening: number;
  lastHandoff?: { version: number; bytes: number; ms: number; workers: number };
  workers: {
    slot: number;
    id?: number;
    pid?: number;
    state: string;
    version: number;
    stats?: { pid: number; version: number; requests: number; inFlight: number };
  }[];
}

export interface Gateway extends Proc {
  port: number;
  adminPort: number;
  url(path: string): string;
  readyz(): Promise<{ status: number; body: { ready: boolean; reasons: string[] } }>;
  workers(): Promise<WorkersView>;
  /** Waits until every live worker serves a version > `after` (all equal) and /readyz is 200; returns it. */
  waitForVersion(after: number, timeoutMs?: number): Promise<number>;
}

export async function startGateway(opts: {
  routes: string;
  catalog: string;
  workers: number;
  drainDelay?: string;
  drainTimeout?: string;
  waitReady?: boolean;
  /** Start in a process group of its own (see `spawnCli`). */
  detached?: boolean;
}): Promise<Gateway> {
  const port = await freePort();
  const adminPort = await freePort();
  const p = spawnCli(
    [
      'run',
      '--routes',
      opts.routes,
      '--catalog',
      opts.catalog,
      '--listen',
      `127.0.0.1:${port}`,
      '--admin',
      `127.0.0.1:${adminPort}`,
      '--workers',
      String(opts.workers),
      '--drain-delay',
      opts.drainDelay ?? '200ms',
      '--drain-timeout',
      opts.drainTimeout ?? '5s',
    ],
    { EDGEGATE_LOG_LEVEL: 'info' },
    opts.detached,
  );
  const admin = (path: string) => `http://127.0.0.1:${adminPort}${path}`;
  const gw: Gateway = {
    ...p,
    port,
    adminPort,
    url: (path) => `http://127.0.0.1:${port}${path}`,
    async readyz() {
      const r = await request(admin('/readyz'));
      return { status: r.statusCode, body: (await r.body.json()) as { ready: boolean; reasons: string[] } };
    },
    async workers() {
      const r = await request(admin('/debug/workers'));
      return (await r.body.json()) as WorkersView;
    },
    async waitForVersion(after, timeoutMs = 20_000) {
      let seen: unknown;
      return waitFor(
        `every worker to serve a version after ${after}`,
        async () => {
          const w = await gw.workers();
          seen = w;
          const live = w.workers.filter((x) => x.pid !== undefined);
          if (w.version <= after || live.length === 0 || !live.every((x) => x.version === w.version))
            return undefined;
          return (await gw.readyz()).status === 200 ? w.version : undefined;
        },
        timeoutMs,
      ).catch((err) => {
        throw new Error(
          `${(err as Error).message}\nworkers: ${JSON.stringify(seen)}\ngateway output (tail):\n${p.output().slice(-4000)}`,
        );
      });
    },
  };
  if (opts.waitReady !== false) {
    await waitFor(
      'the gateway to be ready',
      async () => {
        if (p.child.exitCode !== null) throw new Error(`gateway exited:\n${p.output()}`);
        return (await gw.readyz()).status === 200;
      },
      30_000,
    );
  }
  return gw;
}

export function catalogYaml(endpoints: { port: number; tags?: string[] }[], service = 'echo'): string {
  const lines = ['datacenters:', '  dc1:', '    services:', `      ${service}:`];
  for (const e of endpoints)
    lines.push(
      `        - { address: 127.0.0.1, port: ${e.port}, tags: [${(e.tags ?? ['edge']).join(', ')}] }`,
    );
  return `${lines.join('\n')}\n`;
}

/**
 * Writes through a temp file and rename, as config management does: the watcher never sees half a file. The temp
 * file lives in the parent of the file's directory, so keep watched files one directory down (`x/routes/a.yaml`,
 * `x/catalog/catalog.yaml`).
 */
export function writeAtomic(file: string, text: string): void {
  const tmp = join(dirname(dirname(file)), `.${basename(file)}.${process.pid}.tmp`);
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

export interface LoadResult {
  ok: number;
  failed: { path: string; error: string }[];
  /** Responses by upstream name (x-echo-name). */
  byUpstream: Map<string, number>;
}

/**
 * `clients` concurrent keep-alive clients (one connection each), each sending requests one after another until
 * `stop()` is called or `maxRequests` in total were sent. `paceMs` between a client's requests keeps the load
 * steady rather than saturating the shared CPU.
 */
export function startLoad(opts: {
  origin: string;
  clients: number;
  paths: (n: number) => { path: string; host?: string };
  maxRequests: number;
  paceMs?: number;
  check?: (
    status: number,
    headers: Record<string, string | string[] | undefined>,
    body: string,
  ) => string | undefined;
}): { stop(): Promise<LoadResult>; result: LoadResult; done: Promise<LoadResult> } {
  const result: LoadResult = { ok: 0, failed: [], byUpstream: new Map() };
  let stopped = false;
  let sent = 0;
  const agents: Agent[] = [];
  const runClient = async () => {
    const agent = new Agent({ connections: 1, pipelining: 1, keepAliveTimeout: 30_000 });
    agents.push(agent);
    while (!stopped && sent < opts.maxRequests) {
      const n = sent++;
      const { path, host } = opts.paths(n);
      try {
        const r = await request(`${opts.origin}${path}`, {
          dispatcher: agent,
          headers: host ? { host } : {},
        });
        const body = await r.body.text();
        const problem =
          r.statusCode !== 200
            ? `status ${r.statusCode}: ${body.slice(0, 200)}`
            : opts.check?.(r.statusCode, r.headers, body);
        if (problem) result.failed.push({ path, error: problem });
        else {
          result.ok++;
          const name = String(r.headers['x-echo-name'] ?? '?');
          result.byUpstream.set(name, (result.byUpstream.get(name) ?? 0) + 1);
        }
      } catch (err) {
        const e = err as Error & { code?: string };
        result.failed.push({ path, error: `${e.code ?? ''} ${e.message}` });
      }
      if (opts.paceMs) await new Promise((r) => setTimeout(r, opts.paceMs));
    }
  };
  const done = Promise.all(Array.from({ length: opts.clients }, runClient)).then(async () => {
    await Promise.all(agents.map((a) => a.close()));
    return result;
  });
  return {
    result,
    done,
    async stop() {
      stopped = true;
      return done;
    },
  };
}
