/** Forwarded headers: rebuilt from an untrusted peer (default), extended from a trusted one. */
import { afterEach, describe, expect, it } from 'vitest';
import { get, startEcho, startGateway, tableOf } from '../support/inproc-gateway.ts';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanup.length > 0) await cleanup.pop()!();
});

async function seenWith(trustedHops: number, headers: Record<string, string>) {
  const up = await startEcho('echo');
  cleanup.push(() => up.close());
  const gw = await startGateway(
    tableOf({ rules: [{ backends: [{ consul: { service: 'echo' } }] }] }, { echo: [up.port] }),
    { trustedHops },
  );
  cleanup.push(() => gw.close());
  const r = await get(gw.port, '/', headers);
  expect(r.status).toBe(200);
  return JSON.parse(r.body).headers as Record<string, string>;
}

const spoofed = {
  'x-forwarded-for': '6.6.6.6',
  'x-forwarded-proto': 'https',
  'x-forwarded-host': 'bank.example',
  'x-real-ip': '6.6.6.6',
  forwarded: 'for=6.6.6.6',
};

describe('forwarded headers', () => {
  it('trusted hops 0 (default): client-sent forwarded headers are replaced by what the gateway saw', async () => {
    const seen = await seenWith(0, spoofed);
    expect(seen['x-forwarded-for']).toBe('127.0.0.1');
    expect(seen['x-forwarded-proto']).toBe('http');
    expect(seen['x-forwarded-host']).toBe('test.local');
    expect(seen['x-real-ip']).toBeUndefined();
    expect(seen.forwarded).toBeUndefined();
  });

  it('trusted hops 1: the chain is extended and the proxy’s scheme and host are kept', async () => {
    const seen = await seenWith(1, spoofed);
    expect(seen['x-forwarded-for']).toBe('6.6.6.6, 127.0.0.1');
    expect(seen['x-forwarded-proto']).toBe('https');
    expect(seen['x-forwarded-host']).toBe('bank.example');
    expect(seen.forwarded).toBeUndefined();
  });
});
