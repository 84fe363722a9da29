/**
 * gRPC through the gateway to a cleartext HTTP/2 upstream (`protocol: h2c`, prior knowledge), with real grpc-js
 * clients and servers: every call kind, error statuses and trailing metadata passed through, deadlines, and the
 * gateway's own errors answered in gRPC's terms (grpc-status, not an HTTP 502 page) — over HTTP/2 on the HTTPS
 * listener and over h2c on the plain listener (`h2c` listener setting).
 */
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { createServer as createH2cServer, connect as h2connect } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { edgeEvents } from '../../../src/dataplane/proxy/edge-events.ts';
import {
  type EchoClient,
  echoClient,
  type GrpcEchoServer,
  grpc,
  type Msg,
  startGrpcEcho,
  unary,
} from '../../support/grpc.ts';
import { type Gateway, startGateway, tableOf } from '../../support/inproc-gateway.ts';
import { freePort } from '../../support/ports.ts';
import { makeCert, type TestCert } from '../tls/helpers.ts';

function collect<T>(
  stream: NodeJS.EventEmitter,
): Promise<{ items: T[]; status: grpc.StatusObject | undefined; error?: grpc.ServiceError }> {
  return new Promise((resolve) => {
    const items: T[] = [];
    let status: grpc.StatusObject | undefined;
    stream.on('data', (m: T) => items.push(m));
    stream.on('status', (s: grpc.StatusObject) => {
      status = s;
    });
    stream.on('error', (error: grpc.ServiceError) => resolve({ items, status, error }));
    stream.on('end', () => setImmediate(() => resolve({ items, status })));
  });
}

let upstream: GrpcEchoServer;
let gw: Gateway;
let cert: TestCert;
let deadPort: number;
const clients: EchoClient[] = [];

function route(port: number, service = 'grpc') {
  return tableOf(
    {
      rules: [
        {
          matches: [{ path: { type: 'PathPrefix', value: '/test.Echo/' } }],
          backends: [{ consul: { service }, protocol: 'h2c' }],
        },
      ],
    },
    { [service]: [port] },
  );
}

beforeAll(async () => {
  upstream = await startGrpcEcho('upstream-1');
  cert = makeCert(mkdtempSync(join(tmpdir(), 'grpc-h2c-')), 'gw', 'grpc.test');
  gw = await startGateway(route(upstream.port), {}, { h2c: true }, { tls: cert });
  deadPort = await freePort();
});

afterAll(async () => {
  for (const c of clients) c.close();
  await gw?.close();
  await upstream?.close();
});

/** A client through the HTTPS listener (HTTP/2 over TLS) or the plain listener (h2c, prior knowledge). */
const transports = [
  ['HTTPS listener (h2)', () => echoClient(gw.tlsPort, { caPem: cert.certPem, serverName: 'grpc.test' })],
  ['plain listener (h2c)', () => echoClient(gw.port)],
] as const;

describe.each(transports)(
  'gRPC through the gateway to an h2c upstream, client over the %s',
  (_name, makeClient) => {
    let client: EchoClient;
    beforeAll(() => {
      client = makeClient();
      clients.push(client);
    });

    it('unary: request and answer pass, the deadline travels as grpc-timeout', async () => {
      const r = await unary(client, 'Unary', { text: 'hello', n: 7 }, { deadline: Date.now() + 10_000 });
      expect(r).toMatchObject({ ok: { text: 'hello', n: 7, server: 'upstream-1' } });
      const left = 'ok' in r ? r.ok.deadlineMs : undefined;
      expect(left).toBeGreaterThan(5000);
      expect(left).toBeLessThanOrEqual(10_000);
    });

    it('server streaming: every message, then the trailers (grpc-status 0 and custom trailing metadata)', async () => {
      const call = client.ServerStream({ text: 's', n: 50 });
      const { items, status, error } = await collect<Msg>(call);
      expect(error).toBeUndefined();
      expect(items.map((m) => m.text)).toEqual(Array.from({ length: 50 }, (_, i) => `s#${i}`));
      expect(status?.code).toBe(grpc.status.OK);
      expect(status?.metadata.get('x-stream-count')).toEqual(['50']);
    });

    it('client streaming: the upstream reads every message before it answers', async () => {
      const answer = await new Promise<Msg>((resolve, reject) => {
        const call = client.ClientStream(new grpc.Metadata(), {}, (err, res) =>
          err ? reject(err) : resolve(res!),
        );
        for (let i = 0; i < 20; i++) call.write({ text: `m${i}` });
        call.end();
      });
      expect(answer.n).toBe(20);
      expect(answer.text).toBe(Array.from({ length: 20 }, (_, i) => `m${i}`).join(','));
    });

    it('bidi: messages interleave both ways on one stream', async () => {
      const call = client.Bidi();
      const failed = new Promise<never>((_, reject) => call.on('error', reject));
      const got: Msg[] = [];
      for (let i = 0; i < 5; i++) {
        const next = new Promise<Msg>((resolve) => call.once('data', resolve));
        call.write({ text: `ping${i}`, n: i });
        got.push(await Promise.race([next, failed]));
      }
      const done = collect<Msg>(call);
      call.end();
      expect((await done).status?.code).toBe(grpc.status.OK);
      expect(got.map((m) => m.text)).toEqual([
        'echo:ping0',
        'echo:ping1',
        'echo:ping2',
        'echo:ping3',
        'echo:ping4',
      ]);
    });

    it('an error status, its message and trailing metadata pass through unchanged', async () => {
      const r = await unary(client, 'Fail', { code: grpc.status.NOT_FOUND, text: 'no such thing: ü%' });
      expect('error' in r).toBe(true);
      const err = (r as { error: grpc.ServiceError }).error;
      expect(err.code).toBe(grpc.status.NOT_FOUND);
      expect(err.details).toBe('no such thing: ü%');
      expect(err.metadata.get('x-fail-detail')).toEqual(['from-upstream']);
    });

    it('a deadline is honoured: DEADLINE_EXCEEDED at the client, and the upstream call is cancelled', async () => {
      const before = upstream.cancelled;
      const t0 = Date.now();
      const r = await unary(client, 'Hang', {}, { deadline: Date.now() + 300 });
      expect((r as { error: grpc.ServiceError }).error.code).toBe(grpc.status.DEADLINE_EXCEEDED);
      expect(Date.now() - t0).toBeLessThan(5000);
      // The client's RST_STREAM(CANCEL) went through the gateway to the upstream's stream.
      await expect.poll(() => upstream.cancelled, { timeout: 5000 }).toBeGreaterThan(before);
    });
  },
);

describe('the gateway’s own errors to gRPC clients are gRPC statuses', () => {
  it('upstream down: grpc-status UNAVAILABLE (HTTP 200, Trailers-Only), not an HTTP 502 page', async () => {
    gw.proxy.setTable({ ...route(deadPort, 'down'), version: 10 });
    const key = 'upstreamH2SessionErrors\u0000h2c\u0000connect';
    const failedConnects = edgeEvents.counterValues()[key] ?? 0;
    try {
      for (const [, makeClient] of transports) {
        const client = makeClient();
        clients.push(client);
        const r = await unary(client, 'Unary', { text: 'x' });
        const err = (r as { error: grpc.ServiceError }).error;
        expect(err.code).toBe(grpc.status.UNAVAILABLE);
        expect(err.details).toBe('could not connect to the upstream');
        expect(err.metadata.get('x-edgegate-error')).toEqual(['EDGEGATE_UPSTREAM_CONNECT']);
      }
      // The failed HTTP/2 connections are counted (edgegate_upstream_http2_session_errors_total).
      expect(edgeEvents.counterValues()[key]).toBeGreaterThanOrEqual(failedConnects + 2);
    } finally {
      gw.proxy.setTable({ ...route(upstream.port), version: 11 });
    }
  });

  it('no route: UNIMPLEMENTED', async () => {
    const client = transports[0][1]();
    clients.push(client);
    const other = new (
      grpc.makeGenericClientConstructor(
        { Nope: { ...(await import('../../support/grpc.ts')).ECHO_SERVICE.Unary, path: '/other.Svc/Nope' } },
        'Other',
      ) as unknown as new (
        t: string,
        c: grpc.ChannelCredentials,
        o: grpc.ChannelOptions,
      ) => grpc.Client & {
        Nope(m: Msg, cb: grpc.requestCallback<Msg>): void;
      }
    )(`127.0.0.1:${gw.tlsPort}`, grpc.credentials.createSsl(Buffer.from(cert.certPem)), {
      'grpc.ssl_target_name_override': 'grpc.test',
      'grpc.default_authority': 'grpc.test',
    });
    const err = await new Promise<grpc.ServiceError>((resolve) => other.Nope({}, (e) => resolve(e!)));
    other.close();
    expect(err.code).toBe(grpc.status.UNIMPLEMENTED);
    expect(err.metadata.get('x-edgegate-error')).toEqual(['EDGEGATE_NO_ROUTE']);
    void client;
  });

  it('the gateway enforces grpc-timeout itself: DEADLINE_EXCEEDED from an upstream that ignores it, upstream stream cancelled', async () => {
    // A raw h2c upstream that never answers and does not honour deadlines; it records when its stream is reset.
    const silent = createH2cServer();
    let reset = false;
    silent.on('stream', (stream) => {
      stream.on('close', () => {
        reset = true;
      });
    });
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    gw.proxy.setTable({ ...route((silent.address() as { port: number }).port, 'silent'), version: 20 });
    try {
      const s = h2connect(`https://127.0.0.1:${gw.tlsPort}`, { ca: cert.certPem, servername: 'grpc.test' });
      s.on('error', () => {});
      const st = s.request({
        ':method': 'POST',
        ':path': '/test.Echo/Hang',
        ':authority': 'grpc.test',
        'content-type': 'application/grpc',
        te: 'trailers',
        'grpc-timeout': '300m',
      });
      const t0 = Date.now();
      const message = Buffer.from('{}');
      const frame = Buffer.alloc(5);
      frame.writeUInt32BE(message.length, 1);
      st.end(Buffer.concat([frame, message]));
      const [h] = (await once(st, 'response')) as [Record<string, string>];
      st.resume();
      expect(Number(h[':status'])).toBe(200);
      expect(h['grpc-status']).toBe(String(grpc.status.DEADLINE_EXCEEDED));
      expect(h['x-edgegate-error']).toBe('EDGEGATE_UPSTREAM_TIMEOUT');
      expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
      expect(Date.now() - t0).toBeLessThan(5000);
      await expect.poll(() => reset, { timeout: 5000 }).toBe(true);
      s.close();
    } finally {
      gw.proxy.setTable({ ...route(upstream.port), version: 21 });
      silent.close();
    }
  });

  it('an upstream that restarts is reached again (the pooled HTTP/2 session reconnects)', async () => {
    const client = transports[0][1]();
    clients.push(client);
    expect(await unary(client, 'Unary', { text: 'before' })).toMatchObject({ ok: { text: 'before' } });
    const port = upstream.port;
    await upstream.close();
    const down = await unary(client, 'Unary', { text: 'during' });
    expect((down as { error: grpc.ServiceError }).error.code).toBe(grpc.status.UNAVAILABLE);
    upstream = await startGrpcEcho('upstream-2', port);
    expect(await unary(client, 'Unary', { text: 'after' })).toMatchObject({
      ok: { text: 'after', server: 'upstream-2' },
    });
  });
});
