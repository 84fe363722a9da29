/**
 * Child processes for real servers: output captured to a log file, a readable log
 * tail on failure, and no leftovers. Every process is started in its own process
 * group and is killed (with its group) when the test process exits, even if it
 * exits by a signal: a tiny shell watchdog per process kills the group when the
 * parent disappears.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, fstatSync, mkdirSync, openSync, readSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

export interface ProcessSpec {
  /** Short name used in messages, e.g. "consul-dc1". */
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** stdout and stderr are appended here (the directory is created). */
  logPath: string;
  /** Signal for a clean stop (default SIGTERM). */
  stopSignal?: NodeJS.Signals;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  readonly logPath: string;
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<ExitInfo>;
  /** True until the process has exited. */
  running(): boolean;
  /** Clean stop: stopSignal, then SIGKILL to the group after `timeoutMs` (default 10 s). */
  stop(timeoutMs?: number): Promise<ExitInfo>;
  /** Immediate SIGKILL of the process group (an outage, not a shutdown). */
  kill(): Promise<ExitInfo>;
  /** The last `lines` lines of the log file. */
  tail(lines?: number): string;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of live) killGroup(child, 'SIGKILL');
  });
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}

// Kills the child's process group as soon as the parent (this process) is gone.
const WATCHDOG =
  'while kill -0 "$1" 2>/dev/null && kill -0 "$2" 2>/dev/null; do sleep 1; done; ' +
  'kill -0 "$1" 2>/dev/null || kill -9 "-$2" 2>/dev/null || kill -9 "$2" 2>/dev/null; exit 0';

/** Starts a process with its output appended to spec.logPath. */
export function startProcess(spec: ProcessSpec): ManagedProcess {
  installExitHook();
  mkdirSync(dirname(spec.logPath), { recursive: true });
  const fd = openSync(spec.logPath, 'a');
  writeSync(
    fd,
    `\n===== ${new Date().toISOString()} start ${spec.name}: ${spec.command} ${spec.args.join(' ')}\n`,
  );
  let child: ChildProcess;
  try {
    child = spawn(spec.command, spec.args, {
      cwd: spec.cwd,
      env: spec.env ?? process.env,
      stdio: ['ignore', fd, fd],
      detached: true,
    });
  } finally {
    closeSync(fd);
  }
  if (child.pid === undefined) {
    throw new Error(`${spec.name}: could not start ${spec.command}`);
  }
  live.add(child);
  const pid = child.pid;
  const watchdog = spawn('sh', ['-c', WATCHDOG, 'watchdog', String(process.pid), String(pid)], {
    stdio: 'ignore',
    detached: true,
  });
  watchdog.unref();
  watchdog.on('error', () => {});

  let exitInfo: ExitInfo | undefined;
  let stopping = false;
  const exited = new Promise<ExitInfo>((resolve) => {
    const done = (info: ExitInfo) => {
      if (exitInfo) return;
      exitInfo = info;
      live.delete(child);
      try {
        watchdog.kill('SIGKILL');
      } catch {
        // gone
      }
      // The group may hold grandchildren; make sure none outlive the leader.
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // no group left
      }
      if (!stopping) {
        process.stderr.write(
          `[harness] ${spec.name} (pid ${pid}) exited unexpectedly: code=${info.code} signal=${info.signal}\n` +
            formatTail(spec.name, spec.logPath, 30),
        );
      }
      resolve(info);
    };
    child.once('exit', (code, signal) => done({ code, signal }));
    child.once('error', (err) => {
      appendLog(spec.logPath, `[harness] spawn error: ${err.message}\n`);
      done({ code: -1, signal: null });
    });
  });

  const stop = async (timeoutMs = 10_000): Promise<ExitInfo> => {
    if (exitInfo) return exitInfo;
    stopping = true;
    killGroup(child, spec.stopSignal ?? 'SIGTERM');
    const timer = setTimeout(() => killGroup(child, 'SIGKILL'), timeoutMs);
    try {
      return await exited;
    } finally {
      clearTimeout(timer);
    }
  };

  return {
    name: spec.name,
    pid,
    logPath: spec.logPath,
    exited,
    running: () => exitInfo === undefined,
    stop,
    kill: async () => {
      if (exitInfo) return exitInfo;
      stopping = true;
      killGroup(child, 'SIGKILL');
      return exited;
    },
    tail: (lines = 50) => tailFile(spec.logPath, lines),
  };
}

function appendLog(path: string, text: string): void {
  try {
    const fd = openSync(path, 'a');
    writeSync(fd, text);
    closeSync(fd);
  } catch {
    // best effort
  }
}

/** The last `lines` lines of a file (reads at most its last 256 KiB). */
export function tailFile(path: string, lines = 50): string {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return `(no log at ${path})`;
  }
  try {
    const size = fstatSync(fd).size;
    const len = Math.min(size, 256 * 1024);
    const buf = Buffer.alloc(len);
    readSync(fd, buf, 0, len, size - len);
    const all = buf.toString('utf8').split('\n');
    if (all.at(-1) === '') all.pop();
    return all.slice(-lines).join('\n');
  } finally {
    closeSync(fd);
  }
}

/** A log tail framed for printing: header with name and path, then the lines. */
export function formatTail(name: string, logPath: string, lines = 50): string {
  return `----- last ${lines} lines of ${name} log (${logPath}) -----\n${tailFile(logPath, lines)}\n----- end of ${name} log -----\n`;
}

export interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Written to stdin, then stdin is closed. */
  input?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Kill the command after this long (default 60 s). */
  timeoutMs?: number;
}

/** Runs a short command to completion and collects its output (never rejects on exit status). */
export function runCommand(command: string, args: string[], opts: RunOptions = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    live.add(child);
    installExitHook();
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (b: Buffer) => out.push(b));
    child.stderr?.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      live.delete(child);
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      live.delete(child);
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
    child.stdin?.on('error', () => {});
    child.stdin?.end(opts.input ?? '');
  });
}
