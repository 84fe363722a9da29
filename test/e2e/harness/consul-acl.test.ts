// A private Consul pair with ACLs on (default deny) and a bootstrap token.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ConsulPair, startConsulPair } from '../../support/consul.ts';
import { consulLogs, printLogsOnFailure } from '../../support/logs.ts';
import { waitFor } from '../../support/wait.ts';

let pair: ConsulPair | undefined;
const bootstrapToken = randomUUID();
printLogsOnFailure(() => consulLogs(pair?.dc1, pair?.dc2));

beforeAll(async () => {
  pair = await startConsulPair({ acl: { bootstrapToken } });
}, 120_000);
afterAll(async () => {
  await pair?.stop();
});

describe('consul pair with ACLs', () => {
  it('uses the given bootstrap token', () => {
    expect(pair!.token).toBe(bootstrapToken);
    expect(pair!.dc1.token).toBe(bootstrapToken);
  });

  it('denies anonymous writes and allows the management token, in both DCs', async () => {
    const { dc1, dc2 } = pair!;
    const body = JSON.stringify({
      Node: 'ext-acl',
      Address: '127.0.0.2',
      Service: { ID: 'acl-1', Service: 'acl', Port: 9201 },
    });
    // Anonymous: plain fetch, no token.
    const anon = await fetch(`${dc1.httpUrl}/v1/catalog/register`, { method: 'PUT', body });
    expect(anon.status).toBe(403);
    expect(await anon.text()).toMatch(/Permission denied/i);
    const anonDc2 = await fetch(`${dc2.httpUrl}/v1/catalog/register`, { method: 'PUT', body });
    expect(anonDc2.status).toBe(403);

    const ok = await dc1.fetch('/v1/catalog/register', {
      method: 'PUT',
      body: JSON.stringify({ ...JSON.parse(body), Datacenter: 'dc2' }),
    });
    expect(ok.status, await ok.text()).toBe(200);
    const seen = await dc2.json<Array<{ ServiceID: string }>>('/v1/catalog/service/acl');
    expect(seen.map((s) => s.ServiceID)).toEqual(['acl-1']);
    // Anonymous reads are filtered to nothing under default deny.
    const anonRead = await fetch(`${dc2.httpUrl}/v1/catalog/service/acl`);
    expect(await anonRead.json()).toEqual([]);
  });

  it('replicates ACL tokens from dc1 to dc2', async () => {
    const { dc1, dc2 } = pair!;
    const created = await dc1.json<{ AccessorID: string; SecretID: string }>('/v1/acl/token', {
      method: 'PUT',
      body: JSON.stringify({ Description: 'harness', Local: false }),
    });
    await waitFor(
      async () => {
        const res = await dc2.fetch(`/v1/acl/token/${created.AccessorID}?stale`);
        return res.status === 200;
      },
      { timeoutMs: 30_000, message: 'the token to replicate to dc2' },
    );
  });
});
