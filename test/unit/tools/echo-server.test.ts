/** `edgegate echo` (src/tools/echo-server.ts), the upstream of the demo and many tests: its query knobs. */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEchoServer } from '../../../src/tools/echo-server.ts';

const server = createEchoServer({ name: 'unit' });
let base = '';
beforeAll(async () => {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => server.close());

describe('edgegate echo', () => {
  it('describes what it received: method, path, query, headers, body size, its name', async () => {
    const r = await fetch(`${base}/a/b?x=1`, { method: 'POST', body: 'hello', headers: { 'x-t': 'v' } });
    expect(r.status).toBe(200);
    expect(r.headers.get('x-echo-name')).toBe('unit');
    const j = (await r.json()) as Record<string, unknown>;
    expect(j).toMatchObject({ name: 'unit', method: 'POST', path: '/a/b', query: { x: '1' }, bodyBytes: 5 });
    expect((j.headers as Record<string, string>)['x-t']).toBe('v');
  });

  it('status=, size= (with Content-Length), chunks= (chunked) and delay=', async () => {
    expect((await fetch(`${base}/?status=503`)).status).toBe(503);
    const sized = await fetch(`${base}/?size=100000`);
    expect(sized.headers.get('content-length')).toBe('100000');
    expect((await sized.arrayBuffer()).byteLength).toBe(100000);
    const chunked = await fetch(`${base}/?size=1000&chunks=4`);
    expect(chunked.headers.get('transfer-encoding')).toBe('chunked');
    expect((await chunked.arrayBuffer()).byteLength).toBe(1000);
    const t0 = performance.now();
    await (await fetch(`${base}/?delay=50`)).text();
    expect(performance.now() - t0).toBeGreaterThanOrEqual(45);
  });
});
