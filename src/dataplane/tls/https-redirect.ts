/**
 * `--https-redirect 301|308`: the HTTP listener answers every request with a redirect to the same host and path
 * on HTTPS instead of proxying it. (Per route, the RequestRedirect filter with `scheme: https` does the same for
 * chosen routes only.) 308 keeps the method and body of a POST; 301 is what old clients understand.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

export class HttpsRedirector {
  readonly #statusCode: number;
  /** Public HTTPS port for the Location (443: omitted). */
  readonly #port: number;

  constructor(statusCode: 301 | 308, port: number) {
    this.#statusCode = statusCode;
    this.#port = port;
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    const hostHeader = req.headers.host ?? '';
    // Host without its port; IPv6 literals keep their brackets.
    const host = hostHeader.startsWith('[')
      ? hostHeader.slice(0, hostHeader.indexOf(']') + 1)
      : hostHeader.split(':')[0]!;
    const target = req.url?.startsWith('/') ? req.url : '/';
    if (!host || /[^a-zA-Z0-9.\-[\]:]/.test(host)) {
      const body = JSON.stringify({ error: 'EDGEGATE_BAD_REQUEST', message: 'invalid Host header' });
      res.writeHead(400, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
      return;
    }
    const location = `https://${host}${this.#port === 443 ? '' : `:${this.#port}`}${target}`;
    res.writeHead(this.#statusCode, { location, 'content-length': 0 });
    res.end();
  }
}
