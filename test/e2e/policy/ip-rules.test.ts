/**
 * IP allow / deny through `edgegate run --workers 2`, global (--ip-allow / --ip-deny) and per rule; the client
 * address is the peer unless --trusted-hops says how many proxies in front may be believed. One test per bypass
 * attempt: a spoofed X-Forwarded-For from an untrusted peer, a spoofed entry prepended behind a trusted proxy,
 * IPv4-mapped IPv6 addresses (a dual-stack listener's peer, and in X-Forwarded-For).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../support/ports.ts';
import { scrapeMetrics } from '../../support/prom-text.ts';
import {
  type Answer,
  type PolicyGateway,
  prefixRule,
  type RecordingUpstream,
  call as rawCall,
  startPolicyGateway,
  startRecordingUpstream,
} from './helpers.ts';

let up: RecordingUpstream;
/** trusted hops 0 (the default): the TCP peer is the client. */
let direct: PolicyGateway;
/** behind one trusted proxy, global deny of 192.0.2.0/24, listening dual-stack on [::]. */
let behindProxy: PolicyGateway;
let dualStackPort: number;
/** behind one trusted proxy, a global allow list: only 198.51.100.0/24 gets anywhere. */
let allowOnly: PolicyGateway;

const routes = {
  ip: {
    rules: [
      prefixRule('office-only', '/office', { ipAllow: ['10.0.0.0/8', '2001:db8::/32'] }),
      prefixRule('no-loopback', '/no-loopback', { ipDeny: ['127.0.0.1/32'] }),
      prefixRule('no-loopback-mapped', '/no-mapped', { ipDeny: ['::ffff:127.0.0.0/104'] }),
      prefixRule('allow-but-deny', '/allow-deny', {
        ipAllow: ['198.51.100.0/24'],
        ipDeny: ['198.51.100.66'],
      }),
      prefixRule('open', '/open'),
    ],
  },
};

beforeAll(async () => {
  up = await startRecordingUpstream('ip-upstream');
  direct = await startPolicyGateway({ services: { api: [{ port: up.port }] }, routes });
  dualStackPort = await freePort({ udp: false });
  behindProxy = await startPolicyGateway({
    services: { api: [{ port: up.port }] },
    routes,
    args: ['--trusted-hops', '1', '--ip-deny', '192.0.2.0/24', '--listen', `[::]:${dualStackPort}`],
  });
  allowOnly = await startPolicyGateway({
    services: { api: [{ port: up.port }] },
    routes,
    args: ['--trusted-hops', '1', '--ip-allow', '198.51.100.0/24'],
  });
});

afterAll(async () => {
  await direct?.stop();
  await behindProxy?.stop();
  await allowOnly?.stop();
  await up?.close();
});

/** The rule each path prefix of `routes` matches, as the `rule` label names it. */
const ruleOf = (path: string): string => {
  const r = routes.ip.rules.find((x) => path.startsWith(x.matches[0]!.path.value));
  if (!r) throw new Error(`no rule for ${path}`);
  return `default/ip#${r.name}`;
};

/** The 403 EDGEGATE_IP_DENIED answers each gateway (by its listening port) gave this file's tests, by rule. */
const denials = new Map<number, Record<string, number>>();

/** `call`, tallying the IP denials it receives. */
async function call(port: number, path: string, opts: Parameters<typeof rawCall>[2] = {}): Promise<Answer> {
  const a = await rawCall(port, path, opts);
  if (a.status === 403 && a.json<{ error?: string }>().error === 'EDGEGATE_IP_DENIED') {
    const byRule = denials.get(port) ?? {};
    const rule = ruleOf(path);
    byRule[rule] = (byRule[rule] ?? 0) + 1;
    denials.set(port, byRule);
  }
  return a;
}

/**
 * Each gateway's edgegate_policy_ip_denied_total (the primary's sum over its 2 workers), by rule, equals the 403s
 * the tests got from it so far — no more, no fewer, and under the rule that matched.
 */
async function expectIpDeniedMetric(): Promise<void> {
  for (const [port, pg] of [
    [direct.gw.port, direct],
    [dualStackPort, behindProxy],
    [allowOnly.gw.port, allowOnly],
  ] as const) {
    const prom = await scrapeMetrics(pg.gw.adminUrl);
    const counted: Record<string, number> = {};
    for (const x of prom.samples)
      if (x.name === 'edgegate_policy_ip_denied_total' && x.value !== 0)
        counted[x.labels.rule!] = (counted[x.labels.rule!] ?? 0) + x.value;
    expect(counted, `edgegate_policy_ip_denied_total of the gateway on port ${port}`).toEqual(
      denials.get(port) ?? {},
    );
  }
}

const status = async (port: number, path: string, xff?: string) =>
  (await call(port, path, xff ? { headers: { 'x-forwarded-for': xff } } : {})).status;

describe('IP rules, direct clients (no trusted hops)', () => {
  it('allows and denies by the peer address', async () => {
    const denied = await call(direct.gw.port, '/office');
    expect(denied.status).toBe(403);
    expect(denied.json<{ error: string; reason: string }>()).toMatchObject({
      error: 'EDGEGATE_IP_DENIED',
      reason: 'not-allowed',
    });
    expect(await status(direct.gw.port, '/no-loopback')).toBe(403);
    expect(await status(direct.gw.port, '/open')).toBe(200);
    await expectIpDeniedMetric();
  });

  it('spoofed X-Forwarded-For from an untrusted peer is ignored (cannot get allowed, cannot dodge a deny)', async () => {
    const before = up.seen.length;
    expect(await status(direct.gw.port, '/office', '10.1.2.3')).toBe(403);
    expect(await status(direct.gw.port, '/office', '10.1.2.3, 10.9.9.9')).toBe(403);
    expect(await status(direct.gw.port, '/no-loopback', '198.51.100.1')).toBe(403);
    expect(up.seen.length).toBe(before);
    // and the upstream is told the real peer, not the spoofed chain
    await call(direct.gw.port, '/open', { headers: { 'x-forwarded-for': '10.1.2.3' } });
    expect(up.seen.at(-1)!.headers['x-forwarded-for']).toBe('127.0.0.1');
    await expectIpDeniedMetric();
  });
});

describe('IP rules behind one trusted proxy', () => {
  it('uses the X-Forwarded-For entry the trusted proxy appended', async () => {
    const p = dualStackPort;
    expect(await status(p, '/office', '10.1.2.3')).toBe(200);
    expect(await status(p, '/office', '2001:db8::7')).toBe(200);
    expect(await status(p, '/office', '203.0.113.9')).toBe(403);
    expect(await status(p, '/allow-deny', '198.51.100.5')).toBe(200);
    expect(await status(p, '/allow-deny', '198.51.100.66')).toBe(403);
    await expectIpDeniedMetric();
  });

  it('global --ip-deny applies to every route', async () => {
    const a = await call(dualStackPort, '/open', { headers: { 'x-forwarded-for': '192.0.2.44' } });
    expect(a.status).toBe(403);
    expect(a.json<{ reason: string }>().reason).toBe('denied');
    expect(await status(dualStackPort, '/open', '198.51.100.1')).toBe(200);
    await expectIpDeniedMetric();
  });

  it('global --ip-allow admits only its networks, on every route', async () => {
    const before = up.seen.length;
    expect(await status(allowOnly.gw.port, '/open', '198.51.100.7')).toBe(200);
    const denied = await call(allowOnly.gw.port, '/open', { headers: { 'x-forwarded-for': '203.0.113.9' } });
    expect(denied.status).toBe(403);
    expect(denied.json<{ reason: string }>().reason).toBe('not-allowed');
    // No X-Forwarded-For: the peer (127.0.0.1) is the client, and it is not on the list.
    expect(await status(allowOnly.gw.port, '/open')).toBe(403);
    // A rule's own allow list cannot widen the global one.
    expect(await status(allowOnly.gw.port, '/office', '10.1.2.3')).toBe(403);
    expect(up.seen.length - before).toBe(1);
    await expectIpDeniedMetric();
  });

  it('a spoofed entry prepended by the client behind a trusted proxy is not used', async () => {
    // The client sent "X-Forwarded-For: 10.1.2.3"; the trusted proxy appended what it saw (203.0.113.9).
    expect(await status(dualStackPort, '/office', '10.1.2.3, 203.0.113.9')).toBe(403);
    // …and cannot hide a globally denied address behind an allowed one.
    expect(await status(dualStackPort, '/open', '198.51.100.1, 192.0.2.44')).toBe(403);
    await expectIpDeniedMetric();
  });

  it('IPv4-mapped IPv6 in X-Forwarded-For is matched as IPv4', async () => {
    expect(await status(dualStackPort, '/open', '::ffff:192.0.2.44')).toBe(403);
    expect(await status(dualStackPort, '/open', '::ffff:c000:22c')).toBe(403);
    expect(await status(dualStackPort, '/office', '::ffff:10.1.2.3')).toBe(200);
    await expectIpDeniedMetric();
  });

  it('garbage in X-Forwarded-For never matches an allow list', async () => {
    expect(await status(dualStackPort, '/office', 'not-an-ip')).toBe(403);
    expect(await status(dualStackPort, '/office', '10.1')).toBe(403);
    expect(await status(dualStackPort, '/office', '012.001.002.003')).toBe(403);
    await expectIpDeniedMetric();
  });
});

describe('IP rules on a dual-stack listener', () => {
  it('an IPv4 client seen as ::ffff:127.0.0.1 is still denied by 127.0.0.1/32 and by the mapped CIDR', async () => {
    // No X-Forwarded-For: with one trusted hop and no header, the peer is the client.
    expect(await status(dualStackPort, '/no-loopback')).toBe(403);
    expect(await status(dualStackPort, '/no-mapped')).toBe(403);
    expect(await status(dualStackPort, '/open')).toBe(200);
    // the same over IPv6 loopback is a different address
    expect((await call(dualStackPort, '/no-loopback', { host: '::1' })).status).toBe(200);
    await expectIpDeniedMetric();
  });
});
