/**
 * Baseline: http-proxy with a keep-alive agent, what a Node user would pick.
 *   node bench/targets/http-proxy.mjs PORT UPSTREAM_URL
 */
import { Agent, createServer } from 'node:http';
import httpProxy from 'http-proxy';

const [port, upstream] = process.argv.slice(2);
const proxy = httpProxy.createProxyServer({
  target: upstream,
  xfwd: true,
  agent: new Agent({ keepAlive: true, maxSockets: 128 }),
});
proxy.on('error', (_err, _req, res) => {
  if ('writeHead' in res && !res.headersSent) res.writeHead(502);
  res.end();
});
createServer((req, res) => proxy.web(req, res)).listen(Number(port), '127.0.0.1', () => console.log('ready'));
