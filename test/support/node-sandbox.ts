/**
 * The host side of the real node (test/support/node.ts): a network + mount namespace joined to the host by a veth
 * pair on a documentation range (RFC 5737) the host does not use, a cgroup of its own in every cgroup v1
 * hierarchy, and a record of all of it in /run, so that everything it made goes away:
 *
 * - `destroy()` at the end of the run: every process in the cgroups (the node's daemons, the container shims, the
 *   containers themselves) is SIGKILLed by PID, the cgroups, the veth pair and the data directory are removed,
 *   and the namespaces go with their last process (the mount namespace's mounts with it: it is private);
 * - a reaper process (test/support/node-reaper.ts, started detached) does the same within a second when the
 *   test process dies without calling destroy() (SIGKILL, a crash);
 * - the next run's `sweepStaleSandboxes()` does it for a record whose owner and reaper are both gone.
 *
 * Every process of the node is started through `wrap()`: a shell that writes its own PID into the sandbox's
 * cgroups and then execs nsenter into the namespaces, so nothing it forks can escape the cgroups.
 */
import { execFileSync, spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  linkSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type CommandResult,
  type ManagedProcess,
  type ProcessSpec,
  runCommand,
  startProcess,
} from './proc.ts';
import { logPathFor, makeTempDir } from './tmp.ts';
import { StopWaiting, waitFor } from './wait.ts';

/** Where sandbox records live: /run, so they vanish with a reboot, as everything they describe does. */
export const RECORD_DIR = process.env.EDGEGATE_NODE_RECORD_DIR || '/run/edgegate-test-node';
const CGROUP_PREFIX = 'edgegate-node-';
const IF_PREFIX = 'egnode';
/** /30 blocks: 203.0.113.0/24 first (test/e2e/kube/endpointslice-netns.test.ts prefers 198.51.100.0/24). */
const RANGES = ['203.0.113', '198.51.100'] as const;
const BLOCKS_PER_RANGE = 64;

export interface SandboxRecord {
  version: 1;
  slot: number;
  /** The process that made the sandbox; its start time (from /proc/<pid>/stat) tells a reused PID apart. */
  owner: { pid: number; start: string };
  hostIf: string;
  nodeIf: string;
  hostIp: string;
  nodeIp: string;
  /** The cgroup's name in every hierarchy (/sys/fs/cgroup/<controller>/<cgroup>). */
  cgroup: string;
  /** The node's data directory (removed). */
  dir: string;
  holderPid?: number;
  /** "mnt:[inode]" and "net:[inode]" of the holder: how a leftover namespace is recognised. */
  mntNs?: string;
  netNs?: string;
  reaperPid?: number;
}

export interface Sandbox {
  readonly record: SandboxRecord;
  readonly nodeIp: string;
  readonly hostIp: string;
  readonly dir: string;
  /** Path of a cgroup of the sandbox ("" = its root) in every v1 hierarchy, created if missing. */
  ensureCgroup(sub: string): void;
  /** The cgroup.procs files of one of its cgroups, ':'-separated (what wrap() writes its PID into). */
  procsFiles(cgroup: string): string;
  /** argv that runs `command args` in the sandbox: inside `cgroup` (default "system"), both namespaces. */
  wrap(command: string, args: string[], cgroup?: string): { command: string; args: string[] };
  /** A short command inside the sandbox (never rejects on exit status). */
  run(command: string, args: string[], opts?: { input?: string; timeoutMs?: number }): Promise<CommandResult>;
  /** Like run() but throws with the output on a non-zero exit. */
  must(command: string, args: string[], opts?: { input?: string; timeoutMs?: number }): Promise<string>;
  /** A long-running process inside the sandbox (proc.ts's ManagedProcess: log file, watchdog). */
  start(spec: ProcessSpec & { cgroup?: string }): ManagedProcess;
  /** PIDs in the sandbox's cgroups (every hierarchy), or in one cgroup below its root and that cgroup's children. */
  pids(sub?: string): number[];
  /** Removes everything; returns what could not be removed (empty when all is gone). */
  destroy(): Promise<string[]>;
}

function sh(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { code?: string; stderr?: string; message: string };
    if (e.code === 'ENOENT') throw new Error(`${command} is not installed: run 'bash scripts/test-deps.sh'`);
    throw new Error(`${command} ${args.join(' ')} failed: ${(e.stderr ?? '').trim() || e.message}`);
  }
}

function trySh(command: string, args: string[]): boolean {
  try {
    execFileSync(command, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The start time of a process (field 22 of /proc/<pid>/stat), or undefined if there is no such process. */
export function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function ownerAlive(record: SandboxRecord): boolean {
  return processStart(record.owner.pid) === record.owner.start;
}

/** Mount points of the cgroup v1 hierarchies and of the v2 (unified) one. */
function cgroupMounts(): { v1: string[]; all: string[] } {
  const v1: string[] = [];
  const all: string[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const mountPoint = left.split(' ')[4];
    const fsType = right.split(' ')[0];
    if (!mountPoint) continue;
    if (fsType === 'cgroup') {
      v1.push(mountPoint);
      all.push(mountPoint);
    } else if (fsType === 'cgroup2') all.push(mountPoint);
  }
  return { v1, all };
}

/** Every directory of a cgroup tree, deepest first. */
function cgroupTree(root: string): string[] {
  if (!existsSync(root)) return [];
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true }))
      if (entry.isDirectory()) walk(join(dir, entry.name));
    out.push(dir);
  };
  walk(root);
  return out;
}

function cgroupPids(cgroup: string): number[] {
  const pids = new Set<number>();
  for (const mount of cgroupMounts().all) {
    for (const dir of cgroupTree(join(mount, cgroup))) {
      try {
        for (const line of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n'))
          if (line.trim()) pids.add(Number(line));
      } catch {
        // removed meanwhile
      }
    }
  }
  return [...pids];
}

function nsId(pid: number, kind: 'mnt' | 'net'): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/${kind}`);
  } catch {
    return undefined;
  }
}

/** PIDs of processes in namespace `id` ("mnt:[…]" or "net:[…]"). */
function pidsInNamespace(kind: 'mnt' | 'net', id: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    if (nsId(Number(entry), kind) === id) out.push(Number(entry));
  }
  return out;
}

function linkExists(name: string): boolean {
  return existsSync(`/sys/class/net/${name}`);
}

/** What of a record still exists on this machine (empty: nothing). */
export function leftovers(record: SandboxRecord): string[] {
  const found: string[] = [];
  const pids = cgroupPids(record.cgroup);
  if (pids.length > 0) found.push(`processes in cgroup ${record.cgroup}: ${pids.join(' ')}`);
  for (const mount of cgroupMounts().all)
    if (existsSync(join(mount, record.cgroup))) found.push(`cgroup ${join(mount, record.cgroup)}`);
  if (linkExists(record.hostIf)) found.push(`veth ${record.hostIf}`);
  for (const [kind, id] of [
    ['mnt', record.mntNs],
    ['net', record.netNs],
  ] as const) {
    if (!id) continue;
    const inNs = pidsInNamespace(kind, id);
    if (inNs.length > 0) found.push(`${kind} namespace ${id} (processes ${inNs.join(' ')})`);
  }
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.includes(` ${record.dir}`));
  if (mounts.length > 0) found.push(`mounts under ${record.dir} on the host: ${mounts.length}`);
  if (existsSync(record.dir)) found.push(`directory ${record.dir}`);
  return found;
}

/**
 * Removes everything a record describes (in this order: processes by PID, cgroups, veth, directory) and returns
 * what is still there afterwards. Used by destroy(), the reaper and the sweep.
 */
export async function destroyRecord(record: SandboxRecord, timeoutMs = 60_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  // Processes: SIGKILL every PID in the cgroups (and the holder) until none is left. A process can fork while
  // being killed; the loop catches the children, and nothing leaves the cgroups.
  for (;;) {
    const pids = cgroupPids(record.cgroup);
    if (
      record.holderPid &&
      processStart(record.holderPid) !== undefined &&
      !pids.includes(record.holderPid)
    ) {
      // The holder is in the cgroup unless the sandbox was interrupted before it joined.
      if (record.mntNs && nsId(record.holderPid, 'mnt') === record.mntNs) pids.push(record.holderPid);
    }
    if (pids.length === 0) break;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    if (Date.now() > deadline) break;
    await pause(50);
  }
  // Anything else still in the namespaces (a `nsenter` started outside the cgroups, e.g. by a killed test).
  for (const [kind, id] of [
    ['mnt', record.mntNs],
    ['net', record.netNs],
  ] as const) {
    if (!id) continue;
    for (const pid of pidsInNamespace(kind, id)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
  // Cgroups, deepest first; rmdir fails while a task is still exiting, so retry until the deadline.
  for (const mount of cgroupMounts().all) {
    for (const dir of cgroupTree(join(mount, record.cgroup))) {
      for (;;) {
        try {
          rmdirSync(dir);
          break;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT' || Date.now() > deadline) break;
          await pause(50);
        }
      }
    }
  }
  if (linkExists(record.hostIf)) trySh('ip', ['link', 'delete', record.hostIf]);
  if (existsSync(record.dir)) {
    try {
      rmSync(record.dir, { recursive: true, force: true, maxRetries: 5 });
    } catch {
      // reported below
    }
  }
  // The namespaces end with their last process; wait for the kernel to finish with them.
  try {
    await waitFor(() => leftovers(record).length === 0, {
      timeoutMs: Math.max(1_000, deadline - Date.now()),
    });
  } catch {
    // reported below
  }
  return leftovers(record);
}

function recordPath(slot: number): string {
  return join(RECORD_DIR, `${slot}.json`);
}

export function readRecords(): Array<{ path: string; record: SandboxRecord }> {
  if (!existsSync(RECORD_DIR)) return [];
  const out: Array<{ path: string; record: SandboxRecord }> = [];
  for (const name of readdirSync(RECORD_DIR)) {
    if (!/^\d+\.json$/.test(name)) continue;
    const path = join(RECORD_DIR, name);
    try {
      out.push({ path, record: JSON.parse(readFileSync(path, 'utf8')) as SandboxRecord });
    } catch {
      // half-written by a process killed at that moment: its slot is free again
      rmSync(path, { force: true });
    }
  }
  return out;
}

function writeRecord(record: SandboxRecord): void {
  const path = recordPath(record.slot);
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(record, null, 2));
  renameSync(tmp, path);
}

/**
 * Removes the sandboxes of earlier runs whose owner is gone (and whose reaper did not finish), and cgroups or
 * veths named like ours that no record claims. Returns what it removed, for a warning.
 */
export async function sweepStaleSandboxes(): Promise<string[]> {
  const removed: string[] = [];
  const claimed = new Set<string>();
  for (const { path, record } of readRecords()) {
    if (ownerAlive(record)) {
      claimed.add(record.cgroup);
      claimed.add(record.hostIf);
      continue;
    }
    if (record.reaperPid && processStart(record.reaperPid) !== undefined) {
      // Its reaper is on it right now; give it a moment before doing the same.
      await waitFor(() => processStart(record.reaperPid!) === undefined, { timeoutMs: 60_000 }).catch(
        () => {},
      );
    }
    const what = leftovers(record);
    const left = await destroyRecord(record);
    if (left.length > 0)
      throw new Error(`could not remove the stale node sandbox ${path}:\n${left.join('\n')}`);
    rmSync(path, { force: true });
    if (what.length > 0) removed.push(`${path}: ${what.join('; ')}`);
  }
  // Unclaimed cgroups and veths with our names (a sandbox killed before its record said so). A run starting right
  // now may have written its record since the list above: its slot's record is read again before anything goes.
  const liveNow = (slot: string): boolean => {
    try {
      return ownerAlive(JSON.parse(readFileSync(recordPath(Number(slot)), 'utf8')) as SandboxRecord);
    } catch {
      return false;
    }
  };
  for (const mount of cgroupMounts().all) {
    if (!existsSync(mount)) continue;
    for (const name of readdirSync(mount)) {
      if (!name.startsWith(CGROUP_PREFIX) || claimed.has(name)) continue;
      if (liveNow(name.slice(CGROUP_PREFIX.length))) continue;
      const orphan: SandboxRecord = {
        version: 1,
        slot: -1,
        owner: { pid: 0, start: '' },
        hostIf: '',
        nodeIf: '',
        hostIp: '',
        nodeIp: '',
        cgroup: name,
        dir: '/nonexistent',
      };
      await destroyRecord(orphan, 30_000);
      removed.push(`cgroup ${join(mount, name)}`);
    }
  }
  for (const name of readdirSync('/sys/class/net')) {
    if (!name.startsWith(IF_PREFIX) || !name.endsWith('h') || claimed.has(name)) continue;
    if (liveNow(name.slice(IF_PREFIX.length, -1))) continue;
    trySh('ip', ['link', 'delete', name]);
    removed.push(`veth ${name}`);
  }
  return removed;
}

/** IPv4 networks the host has addresses or routes in (default routes aside). */
function hostNetworks(): Array<[number, number]> {
  const nets: Array<[number, number]> = [];
  const add = (cidr: string) => {
    const [addr, len] = cidr.split('/');
    const n = ipToInt(addr!);
    if (n === undefined) return;
    const bits = len === undefined ? 32 : Number(len);
    const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
    nets.push([(n & mask) >>> 0, mask]);
  };
  const addrs = JSON.parse(sh('ip', ['-j', '-4', 'addr'])) as Array<{
    addr_info?: Array<{ local: string; prefixlen: number }>;
  }>;
  for (const link of addrs) for (const a of link.addr_info ?? []) add(`${a.local}/${a.prefixlen}`);
  const routes = JSON.parse(sh('ip', ['-j', '-4', 'route', 'show', 'table', 'all'])) as Array<{
    dst: string;
  }>;
  for (const r of routes) if (r.dst && r.dst !== 'default') add(r.dst);
  return nets;
}

function ipToInt(ip: string): number | undefined {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) return undefined;
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}

function blockFree(base: number, used: Array<[number, number]>): boolean {
  const mask30 = 0xfffffffc;
  return used.every(([net, mask]) => {
    const m = (mask & mask30) >>> 0; // the wider of the two masks decides the overlap
    return (net & m) >>> 0 !== (base & m) >>> 0;
  });
}

const WRAP_SCRIPT =
  'IFS=:; for p in $1; do echo $$ >"$p" || { echo "cannot join cgroup $p" >&2; exit 97; }; done; unset IFS; shift; exec "$@"';

/**
 * argv that runs `command args` inside a sandbox from any process: a shell writes its PID into the cgroup.procs
 * files (':'-separated), then execs nsenter into the holder's network and mount namespaces.
 */
export function wrapInSandbox(
  holderPid: number,
  procsFiles: string,
  command: string,
  args: string[],
): { command: string; args: string[] } {
  return {
    command: 'sh',
    args: [
      '-c',
      WRAP_SCRIPT,
      'sh',
      procsFiles,
      'nsenter',
      `--target=${holderPid}`,
      '--net',
      '--mount',
      '--',
      command,
      ...args,
    ],
  };
}

export interface CreateSandboxOptions {
  /** Data directory prefix (under the test temp dir). */
  name?: string;
}

/** Creates the namespaces, the veth pair, the cgroups and the record; starts the reaper. */
export async function createSandbox(opts: CreateSandboxOptions = {}): Promise<Sandbox> {
  if (process.getuid?.() !== 0) throw new Error('the real node needs root (namespaces, cgroups, veth)');
  for (const tool of ['unshare', 'nsenter', 'ip', 'sleep']) sh('sh', ['-c', `command -v ${tool}`]);
  if (cgroupMounts().v1.length === 0)
    throw new Error(
      'no cgroup v1 hierarchy is mounted: the real node support is written for cgroup v1 hosts',
    );
  mkdirSync(RECORD_DIR, { recursive: true, mode: 0o700 });
  const owner = { pid: process.pid, start: processStart(process.pid) ?? '' };

  // A slot: a record file created exclusively (link(2) of a complete file fails if the name exists), for a /30
  // no host address or route overlaps.
  const used = hostNetworks();
  const dir = makeTempDir(opts.name ?? 'node');
  let record: SandboxRecord | undefined;
  for (let slot = 0; slot < RANGES.length * BLOCKS_PER_RANGE && !record; slot++) {
    const range = RANGES[Math.floor(slot / BLOCKS_PER_RANGE)]!;
    const block = (slot % BLOCKS_PER_RANGE) * 4;
    if (!blockFree(ipToInt(`${range}.${block}`)!, used)) continue;
    const candidate: SandboxRecord = {
      version: 1,
      slot,
      owner,
      hostIf: `${IF_PREFIX}${slot}h`,
      nodeIf: `${IF_PREFIX}${slot}n`,
      hostIp: `${range}.${block + 1}`,
      nodeIp: `${range}.${block + 2}`,
      cgroup: `${CGROUP_PREFIX}${slot}`,
      dir,
    };
    if (linkExists(candidate.hostIf)) continue;
    const tmp = `${recordPath(slot)}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(candidate, null, 2));
    try {
      linkSync(tmp, recordPath(slot));
      record = candidate;
    } catch {
      // taken (a live sandbox, or a stale one the sweep did not remove)
    } finally {
      rmSync(tmp, { force: true });
    }
  }
  if (!record) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(
      `no free /30 in ${RANGES.join('.0/24, ')}.0/24 for the node's veth pair (records in ${RECORD_DIR})`,
    );
  }
  const rec = record;

  // The reaper first: from here on, whatever happens to this process, the sandbox goes away.
  const reaperLog = openSync(logPathFor(`node-reaper-${rec.slot}`), 'a');
  const reaper = spawn(
    process.execPath,
    [fileURLToPath(new URL('./node-reaper.ts', import.meta.url)), recordPath(rec.slot)],
    { detached: true, stdio: ['ignore', reaperLog, reaperLog] },
  );
  closeSync(reaperLog);
  reaper.unref();
  rec.reaperPid = reaper.pid;
  writeRecord(rec);

  const { v1 } = cgroupMounts();
  const ensureCgroup = (sub: string) => {
    for (const mount of v1) {
      let path = mount;
      for (const part of [rec.cgroup, ...sub.split('/').filter(Boolean)]) {
        const parent = path;
        path = join(path, part);
        if (existsSync(path)) continue;
        mkdirSync(path);
        // A new cpuset has no CPUs or memory nodes: a task cannot join it until they are copied from the parent.
        if (existsSync(join(path, 'cpuset.cpus'))) {
          for (const f of ['cpuset.cpus', 'cpuset.mems'])
            writeFileSync(join(path, f), readFileSync(join(parent, f), 'utf8').trim() || '\n');
        }
      }
    }
  };
  const procsFiles = (cgroup: string) =>
    v1.map((m) => join(m, rec.cgroup, ...cgroup.split('/').filter(Boolean), 'cgroup.procs')).join(':');

  // Processes started through start() (and the holder): killed as such first, so that they do not report
  // themselves as having died unexpectedly when the cgroups are emptied.
  const managed: ManagedProcess[] = [];
  const destroy = async (): Promise<string[]> => {
    await Promise.all(managed.map((p) => p.kill()));
    const left = await destroyRecord(rec);
    if (left.length === 0) rmSync(recordPath(rec.slot), { force: true });
    if (rec.reaperPid) {
      try {
        process.kill(rec.reaperPid, 'SIGTERM');
      } catch {
        // gone
      }
    }
    return left;
  };

  try {
    ensureCgroup('system');
    // The holder: owns the namespaces for the node's lifetime (sleep, in the cgroup like everything else).
    const holder = startProcess({
      name: `node-holder-${rec.slot}`,
      command: 'sh',
      args: [
        '-c',
        WRAP_SCRIPT,
        'sh',
        procsFiles('system'),
        'unshare',
        '--net',
        '--mount',
        '--propagation',
        'private',
        '--',
        'sleep',
        'infinity',
      ],
      logPath: logPathFor(`node-holder-${rec.slot}`),
    });
    managed.push(holder);
    rec.holderPid = holder.pid;
    const hostNs = nsId(process.pid, 'net');
    const [mntNs, netNs] = await waitFor(
      () => {
        if (!holder.running()) throw new StopWaiting(`the namespace holder exited: ${holder.tail(10)}`);
        const net = nsId(holder.pid, 'net');
        const mnt = nsId(holder.pid, 'mnt');
        // unshare has run once the holder (now sleep) is in namespaces other than ours.
        return net &&
          mnt &&
          net !== hostNs &&
          readFileSync(`/proc/${holder.pid}/comm`, 'utf8').trim() === 'sleep'
          ? ([mnt, net] as const)
          : undefined;
      },
      { timeoutMs: 10_000, message: 'the node namespaces' },
    );
    rec.mntNs = mntNs;
    rec.netNs = netNs;
    writeRecord(rec);

    // The veth pair: the host end here, the node end in the namespace; no default route inside.
    sh('ip', ['link', 'add', rec.hostIf, 'type', 'veth', 'peer', 'name', rec.nodeIf]);
    sh('ip', ['link', 'set', rec.nodeIf, 'netns', String(holder.pid)]);
    sh('ip', ['addr', 'add', `${rec.hostIp}/30`, 'dev', rec.hostIf]);
    sh('ip', ['link', 'set', rec.hostIf, 'up']);
  } catch (err) {
    const left = await destroy();
    if (left.length > 0)
      (err as Error).message += `\nand the sandbox was not fully removed: ${left.join('; ')}`;
    throw err;
  }

  const wrap = (command: string, args: string[], cgroup = 'system') =>
    wrapInSandbox(rec.holderPid!, procsFiles(cgroup), command, args);
  const run: Sandbox['run'] = (command, args, o = {}) => {
    const w = wrap(command, args);
    return runCommand(w.command, w.args, { input: o.input, timeoutMs: o.timeoutMs ?? 60_000 });
  };
  const sandbox: Sandbox = {
    record: rec,
    nodeIp: rec.nodeIp,
    hostIp: rec.hostIp,
    dir: rec.dir,
    ensureCgroup,
    procsFiles,
    wrap,
    run,
    must: async (command, args, o) => {
      const res = await run(command, args, o);
      if (res.code !== 0)
        throw new Error(
          `${command} ${args.join(' ')} (in the node) failed (exit ${res.code}): ${res.stderr}${res.stdout}`,
        );
      return res.stdout;
    },
    start: (spec) => {
      const w = wrap(spec.command, spec.args, spec.cgroup);
      const p = startProcess({ ...spec, command: w.command, args: w.args });
      managed.push(p);
      return p;
    },
    pids: (sub) => cgroupPids(sub ? join(rec.cgroup, sub) : rec.cgroup),
    destroy,
  };
  try {
    await sandbox.must('ip', ['link', 'set', 'lo', 'up']);
    await sandbox.must('ip', ['addr', 'add', `${rec.nodeIp}/30`, 'dev', rec.nodeIf]);
    await sandbox.must('ip', ['link', 'set', rec.nodeIf, 'up']);
  } catch (err) {
    await destroy();
    throw err;
  }
  return sandbox;
}

/** True if `path` is a directory (a small fs helper for callers). */
export function isDir(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
