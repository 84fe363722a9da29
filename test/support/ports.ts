/**
 * Free ports on 127.0.0.1. A port is handed out at most once per process, and is
 * checked free for TCP and (optionally) UDP, because Consul's DNS and serf ports use both.
 */
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';

const HOST = '127.0.0.1';
const handedOut = new Set<number>();

function tcpFreePort(port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen({ host: HOST, port, exclusive: true }, () => {
      const addr = srv.address();
      const p = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(p));
    });
  });
}

function udpFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createSocket('udp4');
    sock.unref();
    sock.once('error', () => {
      sock.close();
      resolve(false);
    });
    sock.bind({ address: HOST, port, exclusive: true }, () => sock.close(() => resolve(true)));
  });
}

export interface FreePortOptions {
  /** Also require the port to be free for UDP (default true). */
  udp?: boolean;
}

/** One free port on 127.0.0.1, never returned before by this process. */
export async function freePort(opts: FreePortOptions = {}): Promise<number> {
  const udp = opts.udp ?? true;
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = await tcpFreePort();
    if (port === 0 || handedOut.has(port)) continue;
    if (udp && !(await udpFree(port))) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error('could not find a free port on 127.0.0.1');
}

/** `n` distinct free ports. */
export async function freePorts(n: number, opts: FreePortOptions = {}): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(await freePort(opts));
  return out;
}

/** True if nothing listens on 127.0.0.1:port (TCP). */
export async function isPortFree(port: number): Promise<boolean> {
  try {
    await tcpFreePort(port);
    return true;
  } catch {
    return false;
  }
}

/** Client sockets holding refusedPort()'s ports for the rest of the process. */
const holders: Socket[] = [];

/**
 * A port on 127.0.0.1 where a connection is refused for the rest of the process. Not a port bound and released
 * (another test's listen(0) may take it in between, and the connection then hangs or is answered): the local end
 * of an open client connection, which nothing can listen on while it lives and which answers a SYN with a reset.
 */
export async function refusedPort(): Promise<number> {
  const srv = createServer();
  srv.listen({ host: HOST, port: 0 });
  await once(srv, 'listening');
  const { port } = srv.address() as { port: number };
  const accepted = once(srv, 'connection');
  const client = connect({ host: HOST, port });
  await once(client, 'connect');
  const [peer] = (await accepted) as [Socket];
  srv.close();
  for (const s of [client, peer]) {
    s.unref();
    s.on('error', () => {});
  }
  holders.push(client, peer);
  return client.localPort!;
}
