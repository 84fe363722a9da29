/**
 * A real Redis for tests: Debian's `redis-server` (installed by scripts/test-deps.sh) on a free loopback port,
 * in a temp dir, no persistence (no RDB, no AOF). It can be killed and restarted on the same port (an outage),
 * and paused with SIGSTOP / resumed with SIGCONT (a store that accepts connections but never answers).
 */
import { createConnection } from 'node:net';
import { freePort } from './ports.ts';
import { type ManagedProcess, startProcess } from './proc.ts';
import { logPathFor, makeTempDir, removeDir } from './tmp.ts';
import { waitFor } from './wait.ts';

export const REDIS_SERVER = process.env.EDGEGATE_REDIS_SERVER ?? '/usr/bin/redis-server';

export interface RedisServer {
  port: number;
  url: string;
  /** SIGKILL: the store is gone (connections reset). */
  kill(): Promise<void>;
  /** Starts it again on the same port (empty: no persistence). */
  restart(): Promise<void>;
  /** SIGSTOP: connections stay open, nothing is answered. */
  pause(): void;
  resume(): void;
  /** One command over a raw connection (RESP inline), its first reply line. */
  command(line: string): Promise<string>;
  stop(): Promise<void>;
}

export async function startRedis(opts: { password?: string } = {}): Promise<RedisServer> {
  const port = await freePort({ udp: false });
  const dir = makeTempDir('redis');
  let proc: ManagedProcess | undefined;
  const command = (line: string) =>
    new Promise<string>((resolve, reject) => {
      const s = createConnection({ host: '127.0.0.1', port });
      let buf = '';
      s.setTimeout(2_000, () => s.destroy(new Error('redis: no answer')));
      s.on('error', reject);
      // With a password, AUTH's +OK comes first: the answer wanted is the last of `lines` lines.
      const lines = opts.password ? 2 : 1;
      s.on('data', (d: Buffer) => {
        buf += d.toString('latin1');
        const all = buf.split('\r\n');
        if (all.length > lines) {
          s.destroy();
          resolve(all[lines - 1]!);
        }
      });
      s.write(`${opts.password ? `AUTH ${opts.password}\r\n` : ''}${line}\r\n`);
    });
  const start = async () => {
    proc = startProcess({
      name: `redis-${port}`,
      command: REDIS_SERVER,
      args: [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--dir',
        dir,
        '--save',
        '',
        '--appendonly',
        'no',
        '--daemonize',
        'no',
        ...(opts.password ? ['--requirepass', opts.password] : []),
        '--enable-debug-command',
        'local',
      ],
      logPath: logPathFor('redis'),
    });
    await waitFor(
      async () => {
        if (!proc!.running()) throw new Error(`redis-server exited:\n${proc!.tail(20)}`);
        return (await command('PING').catch(() => '')) === '+PONG' || undefined;
      },
      { timeoutMs: 20_000, message: 'redis-server answers PING', diagnostics: () => proc!.tail(20) },
    );
  };
  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    async kill() {
      await proc?.kill();
    },
    restart: start,
    pause() {
      process.kill(proc!.pid, 'SIGSTOP');
    },
    resume() {
      process.kill(proc!.pid, 'SIGCONT');
    },
    command,
    async stop() {
      if (proc?.running()) {
        process.kill(proc.pid, 'SIGCONT');
        await proc.stop(5_000);
      }
      removeDir(dir);
    },
  };
}
