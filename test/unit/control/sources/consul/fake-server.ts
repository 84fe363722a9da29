/**
 * An in-process HTTP server that plays Consul, answering each request through a handler the test controls
 * (misbehaving on purpose where the test wants it), and recording every request.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SeenRequest {
  path: string;
  query: URLSearchParams;
  at: number;
  headers: IncomingMessage['headers'];
}

export type Handler = (req: SeenRequest, res: ServerResponse, raw: IncomingMessage) => void;

export interface FakeServer {
  url: string;
  requests: SeenRequest[];
  handle(handler: Handler): void;
  close(): Promise<void>;
}

export async function startFakeServer(handler: Handler): Promise<FakeServer> {
  let current = handler;
  const requests: SeenRequest[] = [];
  const server: Server = createServer((raw, res) => {
    const url = new URL(raw.url ?? '/', 'http://fake.invalid');
    const seen = { path: url.pathname, query: url.searchParams, at: performance.now(), headers: raw.headers };
    requests.push(seen);
    current(seen, res, raw);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    handle(h) {
      current = h;
    },
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, 'close').catch(() => {});
    },
  };
}

export function reply(res: ServerResponse, status: number, body: unknown, index?: number | string): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  const headers: Record<string, string | number> = {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  };
  if (index !== undefined) headers['x-consul-index'] = String(index);
  res.writeHead(status, headers);
  res.end(text);
}
