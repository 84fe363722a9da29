/**
 * Upstreams a Service's EndpointSlice can name: the API server refuses loopback endpoint addresses, so `edgegate
 * echo` processes run in a network namespace this module creates (a veth pair on an RFC 5737 TEST-NET /24 the host
 * does not use; traffic stays inside the pair), one address each. `stop()` removes the namespace and the pair.
 * (The same construction as endpointslice-netns.test.ts, for tests that need several named upstreams.)
 */
import { execFileSync } from 'node:child_process';
import { REPO_ROOT } from '../../support/bins.ts';
import { type ManagedProcess, startProcess } from '../../support/proc.ts';
import { logPathFor } from '../../support/tmp.ts';
import { waitFor } from '../../support/wait.ts';
import { rand } from './helpers.ts';

export const UPSTREAM_PORT = 18080;

export interface NetnsUpstreams {
  /** Address of the echo named `name` (or of a spare address where nothing listens: `spare(i)`). */
  addressOf(name: string): string;
  spare(i: number): string;
  processes: ManagedProcess[];
  stop(): Promise<void>;
}

function ip(...args: string[]): string {
  try {
    return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { code?: string; stderr?: string; message: string };
    if (e.code === 'ENOENT') throw new Error('this test needs iproute2 (`ip`) and root for ip netns');
    throw new Error(`ip ${args.join(' ')} failed: ${e.stderr ?? e.message}`);
  }
}

function freeTestNet(): string {
  const used = ip('-o', 'addr', 'show') + ip('route', 'show', 'table', 'all');
  for (const prefix of ['203.0.113', '198.51.100', '192.0.2'])
    if (!used.includes(`${prefix}.`)) return prefix;
  throw new Error(
    'every RFC 5737 TEST-NET range is in use on this host; cannot create an isolated veth pair',
  );
}

/** Echo servers named `names` (answering with their name), plus `spares` addresses where nothing listens. */
export async function startNetnsUpstreams(names: string[], spares = 0): Promise<NetnsUpstreams> {
  if (process.getuid?.() !== 0) throw new Error('this test creates a network namespace: run it as root');
  const id = rand();
  const netns = `eg-test-${id}`;
  const hostIf = `egh-${id}`;
  const nsIf = `egn-${id}`;
  const net = freeTestNet();
  ip('netns', 'add', netns);
  const processes: ManagedProcess[] = [];
  const addresses = new Map<string, string>();
  try {
    ip('link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf);
    ip('link', 'set', nsIf, 'netns', netns);
    ip('addr', 'add', `${net}.1/24`, 'dev', hostIf);
    ip('link', 'set', hostIf, 'up');
    for (let i = 0; i < names.length + spares; i++)
      ip('netns', 'exec', netns, 'ip', 'addr', 'add', `${net}.${i + 2}/24`, 'dev', nsIf);
    ip('netns', 'exec', netns, 'ip', 'link', 'set', nsIf, 'up');
    ip('netns', 'exec', netns, 'ip', 'link', 'set', 'lo', 'up');
    names.forEach((name, i) => {
      const address = `${net}.${i + 2}`;
      addresses.set(name, address);
      processes.push(
        startProcess({
          name: `echo-${name}`,
          command: 'ip',
          args: [
            'netns',
            'exec',
            netns,
            process.execPath,
            `${REPO_ROOT}/cmd/edgegate.ts`,
            'echo',
            '--listen',
            `${address}:${UPSTREAM_PORT}`,
            '--name',
            name,
          ],
          logPath: logPathFor(`echo-${name}-${id}`),
        }),
      );
    });
    for (const address of addresses.values())
      await waitFor(
        async () => {
          try {
            return (await fetch(`http://${address}:${UPSTREAM_PORT}/`)).status === 200;
          } catch {
            return false;
          }
        },
        { timeoutMs: 20_000, message: `echo on ${address} reachable over the veth pair` },
      );
  } catch (err) {
    for (const p of processes) p.kill();
    ip('netns', 'delete', netns);
    throw err;
  }
  return {
    addressOf: (name) => {
      const a = addresses.get(name);
      if (!a) throw new Error(`no upstream ${name}`);
      return a;
    },
    spare: (i) => `${net}.${names.length + 2 + i}`,
    processes,
    async stop() {
      for (const p of processes) await p.stop().catch(() => p.kill());
      try {
        ip('netns', 'delete', netns); // takes the veth pair with it
      } catch {}
    },
  };
}
