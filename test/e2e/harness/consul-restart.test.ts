// A private Consul pair for outage tests: kill one DC, start it again, restart the other.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ConsulPair, startConsulPair } from '../../support/consul.ts';
import { consulLogs, printLogsOnFailure } from '../../support/logs.ts';
import { waitFor } from '../../support/wait.ts';

let pair: ConsulPair | undefined;
printLogsOnFailure(() => consulLogs(pair?.dc1, pair?.dc2));

beforeAll(async () => {
  pair = await startConsulPair();
}, 120_000);
afterAll(async () => {
  await pair?.stop();
});

describe('consul pair restarts', () => {
  it('a killed dc2 is unreachable from dc1, and rejoins over WAN when started again', async () => {
    const { dc1, dc2 } = pair!;
    await dc2.kill();
    expect(dc2.running()).toBe(false);
    await expect(fetch(`${dc2.httpUrl}/v1/status/leader`)).rejects.toThrow();
    await waitFor(
      async () => {
        const res = await dc1.fetch('/v1/catalog/services?dc=dc2');
        return res.status >= 500;
      },
      { timeoutMs: 30_000, message: 'dc1 to fail queries for dc2' },
    );

    await dc2.start();
    expect(dc2.running()).toBe(true);
    await pair!.waitForWan();
    const res = await dc1.fetch('/v1/catalog/services?dc=dc2');
    expect(res.status).toBe(200);
  });

  it('restart() keeps the ports and rejoins', async () => {
    const { dc1, dc2 } = pair!;
    const before = dc1.httpAddr;
    await dc1.restart();
    expect(dc1.httpAddr).toBe(before);
    await pair!.waitForWan();
    expect((await dc2.datacenters()).sort()).toEqual(['dc1', 'dc2']);
  });
});

describe('persistent consul pair', () => {
  it('keeps the catalog across kill() + start()', async () => {
    const p = await startConsulPair({ persistent: true });
    try {
      const res = await p.dc1.fetch('/v1/agent/service/register', {
        method: 'PUT',
        body: JSON.stringify({ ID: 'keep-1', Name: 'keep', Port: 9301 }),
      });
      expect(res.status).toBe(200);
      await p.dc1.kill();
      await p.dc1.start();
      await p.waitForWan();
      const after = await p.dc1.json<Array<{ ServiceID: string }>>('/v1/catalog/service/keep');
      expect(after.map((s) => s.ServiceID)).toEqual(['keep-1']);
    } finally {
      await p.stop();
    }
  }, 120_000);
});
