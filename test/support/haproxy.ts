/**
 * A real HAProxy (Debian's, installed by scripts/test-deps.sh) as an L4 load balancer in front of the gateway:
 * TCP frontends on free loopback ports, each forwarding to one gateway address with `send-proxy` (PROXY v1) or
 * `send-proxy-v2`. Foreground (`-db`), its own temp dir, stopped with the test.
 */
import { writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { freePort } from './ports.ts';
import { type ManagedProcess, startProcess } from './proc.ts';
import { logPathFor, makeTempDir, removeDir } from './tmp.ts';
import { waitFor } from './wait.ts';

export const HAPROXY = process.env.EDGEGATE_HAPROXY ?? '/usr/sbin/haproxy';

export interface HaproxyFrontend {
  /** Forwarded to 127.0.0.1:port. */
  port: number;
  sendProxy: 'send-proxy' | 'send-proxy-v2';
}

export interface Haproxy {
  /** The frontend port for each requested frontend, in order. */
  ports: number[];
  stop(): Promise<void>;
}

export async function startHaproxy(frontends: HaproxyFrontend[]): Promise<Haproxy> {
  const dir = makeTempDir('haproxy');
  const ports: number[] = [];
  let cfg = [
    'global',
    '  maxconn 256',
    'defaults',
    '  mode tcp',
    '  timeout connect 2s',
    '  timeout client 30s',
    '  timeout server 30s',
    '',
  ].join('\n');
  for (const [i, f] of frontends.entries()) {
    const port = await freePort({ udp: false });
    ports.push(port);
    cfg += `frontend f${i}\n  bind 127.0.0.1:${port}\n  default_backend b${i}\n`;
    cfg += `backend b${i}\n  server gw 127.0.0.1:${f.port} ${f.sendProxy}\n\n`;
  }
  const file = join(dir, 'haproxy.cfg');
  writeFileSync(file, cfg);
  const proc: ManagedProcess = startProcess({
    name: 'haproxy',
    command: HAPROXY,
    args: ['-db', '-f', file],
    logPath: logPathFor('haproxy'),
    stopSignal: 'SIGUSR1',
  });
  for (const port of ports)
    await waitFor(
      async () => {
        if (!proc.running()) throw new Error(`haproxy exited:\n${proc.tail(20)}`);
        return new Promise<boolean>((resolve) => {
          const s = createConnection({ host: '127.0.0.1', port }, () => {
            s.destroy();
            resolve(true);
          });
          s.on('error', () => resolve(false));
        });
      },
      { timeoutMs: 20_000, message: `haproxy listens on ${port}`, diagnostics: () => proc.tail(20) },
    );
  return {
    ports,
    async stop() {
      await proc.stop(5_000);
      removeDir(dir);
    },
  };
}
