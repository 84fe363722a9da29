/**
 * `edgegate echo`: a small upstream for demos, tests and benchmarks. It answers with JSON describing what it
 * received and its own name. Query knobs: `status=NNN` (answer code), `size=N` (body of N bytes instead of the
 * JSON), `delay=MS` (wait before answering), `chunks=N` (send the body in N chunks, chunked encoding).
 */
import { createServer, type Server } from 'node:http';

export interface EchoOptions {
  name: string;
}

const FILL = Buffer.alloc(64 * 1024, 'x');

function sendSized(res: import('node:http').ServerResponse, size: number, chunks: number) {
  if (chunks <= 1) res.setHeader('content-length', size);
  let left = size;
  const per = chunks > 1 ? Math.ceil(size / chunks) : FILL.length;
  const pump = () => {
    while (left > 0) {
      const n = Math.min(left, per, FILL.length);
      left -= n;
      if (!res.write(FILL.subarray(0, n))) return void res.once('drain', pump);
    }
    res.end();
  };
  pump();
}

export function createEchoServer(opts: EchoOptions): Server {
  return createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://echo.invalid');
    let received = 0;
    req.on('data', (chunk: Buffer) => {
      received += chunk.length;
    });
    req.on('end', () => {
      const answer = () => {
        const status = Number(url.searchParams.get('status') ?? 200) || 200;
        const size = url.searchParams.get('size');
        const chunks = Number(url.searchParams.get('chunks') ?? 1) || 1;
        res.setHeader('x-echo-name', opts.name);
        if (size !== null) {
          res.statusCode = status;
          res.setHeader('content-type', 'application/octet-stream');
          return sendSized(res, Math.max(0, Number(size) || 0), chunks);
        }
        const body = JSON.stringify({
          name: opts.name,
          method: req.method,
          url: req.url,
          path: url.pathname,
          query: Object.fromEntries(url.searchParams),
          headers: req.headers,
          bodyBytes: received,
          remoteAddress: req.socket.remoteAddress,
        });
        res.writeHead(status, {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
        });
        res.end(body);
      };
      const delay = Number(url.searchParams.get('delay') ?? 0);
      if (delay > 0) setTimeout(answer, delay);
      else answer();
    });
  });
}
