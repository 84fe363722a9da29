/**
 * Baseline: @fastify/http-proxy (undici under the hood), what a Node user would pick.
 *   node bench/targets/fastify-proxy.mjs PORT UPSTREAM_URL
 */
import proxy from '@fastify/http-proxy';
import Fastify from 'fastify';

const [port, upstream] = process.argv.slice(2);
const app = Fastify({ logger: false });
await app.register(proxy, { upstream: upstream, prefix: '/', rewritePrefix: '/', http2: false });
await app.listen({ port: Number(port), host: '127.0.0.1' });
process.send?.('ready');
console.log('ready');
