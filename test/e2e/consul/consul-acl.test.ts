/**
 * `edgegate run --consul` against a real Consul pair with ACLs on (default deny): a read-only token from
 * CONSUL_HTTP_TOKEN_FILE is enough to serve dc2's services; deleting the token gives 403s, which produce one
 * error line, the `forbidden` kind of edgegate_consul_watch_errors_total, and no loss of the last state; a new
 * token written to the file is picked up without a restart.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ConsulPair, startConsulPair } from '../../support/consul.ts';
import { consulLogs, printLogsOnFailure } from '../../support/logs.ts';
import { waitFor } from '../../support/wait.ts';
import {
  CATALOG_ROUTE_YAML,
  type Echo,
  type Gateway,
  register,
  startEcho,
  startGateway,
  stopEcho,
  writeRoutes,
} from './helpers.ts';

const READ_RULES = `
node_prefix "" { policy = "read" }
service_prefix "" { policy = "read" }
agent_prefix "" { policy = "read" }
`;

let pair: ConsulPair | undefined;
let gw: Gateway | undefined;
const echoes: Echo[] = [];
const dir = mkdtempSync(join(tmpdir(), 'edgegate-consul-acl-'));
const tokenFile = join(dir, 'token');

printLogsOnFailure(() => [
  ...consulLogs(pair?.dc1, pair?.dc2),
  ...(gw ? [{ name: 'edgegate', logPath: gw.proc.logPath }] : []),
]);

interface Token {
  AccessorID: string;
  SecretID: string;
}

/** A global token with the read policy, usable in dc2 once replicated there. */
async function readToken(): Promise<Token> {
  const { dc1, dc2 } = pair!;
  const token = await dc1.json<Token>('/v1/acl/token', {
    method: 'PUT',
    body: JSON.stringify({
      Description: 'edgegate read',
      Policies: [{ Name: 'edgegate-read' }],
      Local: false,
    }),
  });
  await waitFor(async () => (await dc2.fetch(`/v1/acl/token/${token.AccessorID}?stale`)).status === 200, {
    timeoutMs: 30_000,
    message: 'the token to replicate to dc2',
  });
  return token;
}

interface SourceStats {
  consul: { up: number; forbidden: number; errorsByKind: Record<string, number> };
}

function forbiddenLines(): number {
  return readFileSync(gw!.proc.logPath, 'utf8')
    .split('\n')
    .filter((l) => l.includes('permission denied (403)')).length;
}

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${gw!.adminPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.slice(name.length + 1)) : Number.NaN;
}

beforeAll(async () => {
  pair = await startConsulPair({ acl: { bootstrapToken: randomUUID() } });
  await pair.dc1.json('/v1/acl/policy', {
    method: 'PUT',
    body: JSON.stringify({ Name: 'edgegate-read', Rules: READ_RULES }),
  });
  writeRoutes(dir, {
    'catalog.yaml': CATALOG_ROUTE_YAML,
  });
}, 180_000);

afterAll(async () => {
  await gw?.stop();
  for (const e of echoes) await stopEcho(e);
  await pair?.stop();
});

describe('edgegate run --consul with ACLs (default deny)', () => {
  let first: Token;

  it('serves dc2 with a read-only token from CONSUL_HTTP_TOKEN_FILE', async () => {
    first = await readToken();
    writeFileSync(tokenFile, `${first.SecretID}\n`);
    const e = await startEcho('billing-1');
    echoes.push(e);
    await register(pair!.dc2, {
      id: 'billing-1',
      service: 'billing',
      tags: ['edge'],
      port: e.port,
      httpStatus: 200,
    });
    gw = await startGateway({
      routesDir: dir,
      stateDir: mkdtempSync(join(tmpdir(), 'edgegate-consul-acl-state-')),
      consulAddr: pair!.dc1.httpAddr,
      env: { CONSUL_HTTP_TOKEN: '', CONSUL_HTTP_TOKEN_FILE: tokenFile },
    });
    const a = await waitFor(
      async () => {
        const r = await gw!.client.get('/dc2/billing/x');
        return r.status === 200 ? r : undefined;
      },
      { timeoutMs: 20_000, message: 'billing-1 served through the catalog route' },
    );
    expect(a.name).toBe('billing-1');
    expect((await gw!.admin<SourceStats>('/debug/sources')).consul.forbidden).toBe(0);
  });

  it('a deleted token: 403s logged once, counted as kind="forbidden", and the last state keeps serving', async () => {
    await pair!.dc1.json(`/v1/acl/token/${first.AccessorID}`, { method: 'DELETE' });
    await waitFor(async () => (await gw!.admin<SourceStats>('/debug/sources')).consul.forbidden >= 3, {
      timeoutMs: 30_000,
      message: 'edgegate to see 403s for the deleted token',
    });
    const st = (await gw!.admin<SourceStats>('/debug/sources')).consul;
    expect(st.up).toBe(0);
    expect(st.errorsByKind.forbidden).toBe(st.forbidden);
    expect(await metric('edgegate_consul_watch_errors_total{kind="forbidden"}')).toBeGreaterThanOrEqual(3);
    expect(await metric('edgegate_source_up{source="consul"}')).toBe(0);
    expect(forbiddenLines()).toBe(1);
    // The last state: billing-1 still answers.
    const a = await gw!.client.get('/dc2/billing/x');
    expect([a.status, a.name]).toEqual([200, 'billing-1']);
  });

  it('a new token written to the file is used after the next 403, without a restart', async () => {
    const second = await readToken();
    writeFileSync(tokenFile, `${second.SecretID}\n`);
    await waitFor(async () => (await gw!.admin<SourceStats>('/debug/sources')).consul.up === 1, {
      timeoutMs: 30_000,
      message: 'the Consul source to be up again with the new token',
    });
    const e = await startEcho('billing-2');
    echoes.push(e);
    await register(pair!.dc2, {
      id: 'billing-2',
      service: 'billing',
      tags: ['edge'],
      port: e.port,
      httpStatus: 200,
    });
    await waitFor(async () => (await gw!.client.get('/dc2/billing/x')).name === 'billing-2', {
      timeoutMs: 20_000,
      message: 'billing-2 (registered after the rotation) served',
    });
    // One error line for the whole episode; none for the recovery.
    expect(forbiddenLines()).toBe(1);
  });
});
