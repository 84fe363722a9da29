// The real node's host-side footprint (test/support/node-sandbox.ts: namespaces, veth pair, cgroups, mounts,
// processes, data directory) goes away however the run ends: by destroy(), by the reaper when the test process is
// SIGKILLed, and by the next run's sweep when the reaper is gone too. A sandbox here is the same as the node's,
// without Kubernetes in it (cheap: no node is started for this file).
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import {
  createSandbox,
  leftovers,
  processStart,
  RECORD_DIR,
  type SandboxRecord,
  sweepStaleSandboxes,
} from '../../support/node-sandbox.ts';
import { waitFor } from '../../support/wait.ts';

const FIXTURE = join(import.meta.dirname, 'fixtures', 'hold-sandbox.ts');

/** Starts the fixture and returns its pid and the sandbox record it printed. */
async function holdSandbox(): Promise<{ pid: number; record: SandboxRecord }> {
  const child = spawn(process.execPath, [FIXTURE], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.once('line', resolve);
    child.once('exit', (code) =>
      reject(new Error(`hold-sandbox exited with ${code} before printing its record`)),
    );
  });
  return { pid: child.pid!, record: JSON.parse(line) as SandboxRecord };
}

function expectEverythingThere(record: SandboxRecord): void {
  const present = leftovers(record).join('\n');
  expect(present).toMatch(/processes in cgroup/);
  expect(present).toMatch(/veth egnode/);
  expect(present).toMatch(/mnt namespace/);
  expect(present).toMatch(/net namespace/);
  expect(present).toMatch(/directory /);
  expect(existsSync(join(RECORD_DIR, `${record.slot}.json`))).toBe(true);
}

describe('the real node sandbox leaves nothing behind', () => {
  it('destroy() kills every process in its cgroups (also one in a session of its own) and removes the rest', async () => {
    const sandbox = await createSandbox({ name: 'cleanup-test' });
    sandbox.ensureCgroup('kubepods/pod-x');
    sandbox.start({
      name: 'cleanup-forker',
      command: 'sh',
      args: ['-c', 'setsid sleep 1000 & sleep 1000 & wait'],
      logPath: '/dev/null',
      cgroup: 'kubepods/pod-x',
    });
    await sandbox.must('mount', ['-t', 'tmpfs', 'cleanup-test', '/mnt']);
    await waitFor(() => sandbox.pids().length >= 4, {
      message: 'holder, shell and two sleeps in the cgroups',
    });
    // The node end of the veth answers from inside; the host end is the host's.
    const ping = await sandbox.run('ip', ['-4', '-o', 'addr', 'show']);
    expect(ping.stdout).toContain(`${sandbox.nodeIp}/30`);
    expectEverythingThere(sandbox.record);

    expect(await sandbox.destroy()).toEqual([]);
    expect(leftovers(sandbox.record)).toEqual([]);
    expect(existsSync(join(RECORD_DIR, `${sandbox.record.slot}.json`))).toBe(false);
  }, 60_000);

  it('the reaper removes everything within seconds when the process that made it is SIGKILLed', async () => {
    const { pid, record } = await holdSandbox();
    expectEverythingThere(record);
    expect(record.reaperPid && processStart(record.reaperPid)).toBeTruthy();
    process.kill(pid, 'SIGKILL');
    await waitFor(
      () => leftovers(record).length === 0 && !existsSync(join(RECORD_DIR, `${record.slot}.json`)),
      {
        timeoutMs: 30_000,
        message: 'the reaper to remove the sandbox',
        diagnostics: () => leftovers(record).join('\n'),
      },
    );
    await waitFor(() => processStart(record.reaperPid!) === undefined, { message: 'the reaper to exit' });
  }, 60_000);

  it('the next run sweeps a sandbox whose owner and reaper were both SIGKILLed', async () => {
    const { pid, record } = await holdSandbox();
    process.kill(record.reaperPid!, 'SIGKILL');
    process.kill(pid, 'SIGKILL');
    await waitFor(() => processStart(pid) === undefined && processStart(record.reaperPid!) === undefined);
    // Nobody is left to clean up: everything is still there.
    const stale = leftovers(record);
    expect(stale.join('\n')).toMatch(/processes in cgroup/);
    expect(stale.join('\n')).toMatch(/mnt namespace/);
    expect(JSON.parse(readFileSync(join(RECORD_DIR, `${record.slot}.json`), 'utf8')).slot).toBe(record.slot);

    const removed = await sweepStaleSandboxes();
    expect(removed.join('\n')).toContain(`${record.slot}.json`);
    expect(leftovers(record)).toEqual([]);
    expect(existsSync(join(RECORD_DIR, `${record.slot}.json`))).toBe(false);
    // A second sweep finds nothing of it.
    expect((await sweepStaleSandboxes()).filter((r) => r.includes(`${record.slot}.json`))).toEqual([]);
  }, 60_000);
});
