/**
 * What the load benchmark needs from the machine: Debian packages (nginx, haproxy, wrk), the bench/ npm
 * dependencies, the paced load generator (built from bench/pace with Go, cached), free ports, child processes
 * pinned with taskset, and CPU time of a process tree from /proc.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { createServer } from 'node:net';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BENCH_DIR = dirname(dirname(fileURLToPath(import.meta.url)));
export const REPO_DIR = dirname(BENCH_DIR);
export const CACHE_BIN = join(homedir(), '.cache', 'edgegate', 'bin');

export function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

export function which(cmd: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** apt-get install the Debian packages whose commands are missing (root on Debian/Ubuntu). */
export function ensureDebianPackages(commands: Record<string, string>): void {
  const missing = Object.entries(commands).filter(([cmd]) => !which(cmd) && !existsSync(`/usr/sbin/${cmd}`));
  if (missing.length === 0) return;
  const pkgs = missing.map(([, pkg]) => pkg);
  log(`installing Debian packages: ${pkgs.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '--no-install-recommends', ...pkgs], { stdio: 'inherit', env });
  // Debian starts the packaged services; the benchmark runs its own instances.
  for (const svc of ['nginx', 'haproxy']) spawnSync('service', [svc, 'stop'], { stdio: 'ignore' });
}

export function sbin(cmd: string): string {
  return which(cmd) ?? `/usr/sbin/${cmd}`;
}

/** bench/node_modules from bench/package-lock.json (the Node baselines), installed once. */
export function ensureBenchDependencies(): void {
  if (existsSync(join(BENCH_DIR, 'node_modules', 'http-proxy', 'package.json'))) return;
  log('installing bench/ npm dependencies (npm ci --prefix bench)');
  execFileSync('npm', ['ci', '--prefix', BENCH_DIR, '--no-audit', '--no-fund'], { stdio: 'inherit' });
}

/** The paced generator, built from bench/pace (stdlib Go only) and cached by a hash of its source. */
export function ensurePace(): string {
  const src = join(BENCH_DIR, 'pace');
  const hash = createHash('sha256')
    .update(readFileSync(join(src, 'main.go')))
    .update(readFileSync(join(src, 'go.mod')))
    .digest('hex')
    .slice(0, 12);
  const bin = join(CACHE_BIN, `edgegate-pace-${hash}`);
  if (existsSync(bin)) return bin;
  const go = which('go') ?? (existsSync('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : undefined);
  if (!go) throw new Error('Go is needed to build bench/pace (apt-get install golang-go, or put go on PATH)');
  mkdirSync(CACHE_BIN, { recursive: true });
  log(`building the paced load generator → ${bin}`);
  execFileSync(go, ['build', '-trimpath', '-o', bin, '.'], {
    cwd: src,
    stdio: 'inherit',
    env: { ...process.env, CGO_ENABLED: '0', GOFLAGS: '-mod=mod' },
  });
  return bin;
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface Proc {
  child: ChildProcess;
  name: string;
  output: () => string;
  stop: () => Promise<void>;
}

/** Start `cmd args` pinned to `cpus` (e.g. "1" or "0,1"), keeping the last 64 KiB of its output for errors. */
export function startProcess(name: string, cpus: string, cmd: string, args: string[], cwd = REPO_DIR): Proc {
  const child = spawn('taskset', ['-c', cpus, cmd, ...args], {
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE_ENV: 'production' },
  });
  let out = '';
  const keep = (b: Buffer) => {
    out = (out + b.toString()).slice(-65536);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  return {
    child,
    name,
    output: () => out,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Poll `url` until its status is ok (default: below 500), or fail with the process output. */
export async function waitHttp(
  url: string,
  proc: Proc,
  headers: Record<string, string> = {},
  ok: (status: number) => boolean = (s) => s < 500,
): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (proc.child.exitCode !== null)
      throw new Error(`${proc.name} exited (${proc.child.exitCode}):\n${proc.output()}`);
    // node:http, not fetch: fetch does not let a caller set Host.
    const status = await new Promise<number>((resolve) => {
      const req = httpGet(url, { headers, timeout: 2000 }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', () => resolve(0));
      req.on('timeout', () => req.destroy());
    });
    if (ok(status)) return;
    if (Date.now() > deadline)
      throw new Error(`${proc.name} did not answer ${url} in 30 s:\n${proc.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const CLK_TCK = (() => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  return Number(r.stdout.trim()) || 100;
})();

/** Every pid in the tree rooted at `root` (children found through /proc/<pid>/stat ppid). */
function treePids(root: number): number[] {
  const parent = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parent.set(pid, Number(fields[1]));
    } catch {}
  }
  const out = [root];
  for (let i = 0; i < out.length; i++) for (const [pid, ppid] of parent) if (ppid === out[i]) out.push(pid);
  return out;
}

/** utime + stime of a process tree in seconds (the live processes; taskset execs in place, same pid). */
export function cpuSeconds(root: number): number {
  let ticks = 0;
  for (const pid of treePids(root)) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // After the command: state(0) ppid(1) … utime(11) stime(12).
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {}
  }
  return ticks / CLK_TCK;
}

export function versionOf(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  const text = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim();
  return text.split('\n')[0] ?? '';
}

export function writeFile(path: string, text: string): string {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
  return path;
}
