/**
 * The pure pieces of WebSocket over HTTP/2, h2c and gRPC errors: the route field (validation and compile), the
 * gRPC status mapping and grpc-message encoding, the HTTP/1.1 handshake headers of an RFC 8441 tunnel, and the
 * classification of upstream HTTP/2 session ends.
 */
import { describe, expect, it } from 'vitest';
import { formatPath, validateRoute } from '../../../../src/api/validate.ts';
import { compile } from '../../../../src/compile/compile.ts';
import { edgeSettingsFrom } from '../../../../src/dataplane/proxy/edge-flags.ts';
import { sessionEndReason } from '../../../../src/dataplane/proxy/upstream-h2-events.ts';
import { http1HandshakeHeaders } from '../../../../src/dataplane/proxy/websocket-h2.ts';
import {
  GRPC_STATUS,
  grpcMessage,
  grpcRequestMs,
  grpcStatusOf,
  grpcTimeoutMs,
  isGrpcRequest,
} from '../../../../src/lib/grpc-status.ts';

const route = (backend: Record<string, unknown>) => ({
  apiVersion: 'edgegate.io/v1alpha1',
  kind: 'GatewayRoute',
  metadata: { name: 'r', namespace: 'ns' },
  spec: { rules: [{ backends: [{ consul: { service: 'grpc' }, ...backend }] }] },
});

function errorsOf(raw: unknown): string[] {
  const r = validateRoute(raw);
  return r.ok ? [] : r.errors.map((e) => `${formatPath(e.path)}: ${e.message}`);
}

describe('protocol: h2c on a backend', () => {
  it('is accepted without tls, refused with it (and h2 without tls names h2c)', () => {
    expect(errorsOf(route({ protocol: 'h2c' }))).toEqual([]);
    expect(errorsOf(route({ protocol: 'h2c', tls: {} }))).toEqual([
      'spec.rules[0].backends[0].protocol: h2c is cleartext HTTP/2 and excludes tls (for HTTP/2 over TLS use protocol h2)',
    ]);
    expect(errorsOf(route({ protocol: 'h2' }))[0]).toMatch(
      /needs tls \(for cleartext HTTP\/2 use protocol h2c\)/,
    );
    expect(errorsOf(route({ protocol: 'h3' }))[0]).toMatch(/protocol/);
  });

  it('compiles to a pool with protocol h2c, a cluster apart from the HTTP/1.1 one of the same service', () => {
    const compileWith = (backends: Record<string, unknown>[]) =>
      compile({
        routes: [
          {
            raw: {
              ...route({}),
              spec: {
                rules: backends.map((b, i) => ({
                  matches: [{ path: { type: 'PathPrefix', value: `/r${i}` } }],
                  backends: [{ consul: { service: 'grpc' }, ...b }],
                })),
              },
            },
            origin: 'test',
          },
        ],
        catalog: {
          localDatacenter: 'dc1',
          datacenters: {
            dc1: {
              services: {
                grpc: [
                  {
                    id: 'a',
                    address: '10.0.0.1',
                    port: 9000,
                    tags: [],
                    meta: {},
                    health: 'passing',
                    weight: 1,
                  },
                ],
              },
            },
          },
        },
      }).table;
    const t = compileWith([{ protocol: 'h2c' }, {}]);
    expect(t.clusters).toHaveLength(2);
    expect(t.clusters.map((c) => c.pool.protocol).sort()).toEqual(['h2c', undefined]);
  });

  it('the listener flag --h2c turns h2c on (off by default)', () => {
    const ms = () => 0;
    expect(edgeSettingsFrom({}, ms).listener.h2c).toBeUndefined();
    expect(edgeSettingsFrom({ h2c: true }, ms).listener.h2c).toBe(true);
  });
});

describe('gRPC answers of the gateway', () => {
  it('maps gateway errors to gRPC statuses (gRPC’s HTTP table, refined for timeouts and limits)', () => {
    expect(grpcStatusOf(502, 'EDGEGATE_UPSTREAM_CONNECT')).toBe(GRPC_STATUS.UNAVAILABLE);
    expect(grpcStatusOf(503, 'EDGEGATE_NO_HEALTHY_UPSTREAM')).toBe(GRPC_STATUS.UNAVAILABLE);
    expect(grpcStatusOf(504, 'EDGEGATE_UPSTREAM_TIMEOUT')).toBe(GRPC_STATUS.DEADLINE_EXCEEDED);
    expect(grpcStatusOf(404, 'EDGEGATE_NO_ROUTE')).toBe(GRPC_STATUS.UNIMPLEMENTED);
    expect(grpcStatusOf(403, 'EDGEGATE_IP_DENIED')).toBe(GRPC_STATUS.PERMISSION_DENIED);
    expect(grpcStatusOf(401, 'EDGEGATE_JWT_INVALID')).toBe(GRPC_STATUS.UNAUTHENTICATED);
    expect(grpcStatusOf(429, 'EDGEGATE_RATE_LIMITED')).toBe(GRPC_STATUS.RESOURCE_EXHAUSTED);
    expect(grpcStatusOf(400, 'EDGEGATE_BAD_REQUEST')).toBe(GRPC_STATUS.INTERNAL);
    expect(grpcStatusOf(418, undefined)).toBe(GRPC_STATUS.UNKNOWN);
  });

  it('reads grpc-timeout (every unit; malformed ignored) and bounds the request by it when sooner than the rule', () => {
    expect(grpcTimeoutMs('1H')).toBe(3_600_000);
    expect(grpcTimeoutMs('2M')).toBe(120_000);
    expect(grpcTimeoutMs('3S')).toBe(3000);
    expect(grpcTimeoutMs('250m')).toBe(250);
    expect(grpcTimeoutMs('1500u')).toBe(2);
    expect(grpcTimeoutMs('10n')).toBe(1);
    for (const bad of ['', '5', 'm', '123456789S', '1.5S', '-1S', '1s', '1 S', undefined])
      expect(grpcTimeoutMs(bad)).toBeUndefined();
    expect(grpcRequestMs('300m', 0)).toBe(300);
    expect(grpcRequestMs('300m', 10_000)).toBe(300);
    expect(grpcRequestMs('30S', 10_000)).toBeUndefined();
    expect(grpcRequestMs(undefined, 10_000)).toBeUndefined();
  });

  it('percent-encodes grpc-message outside printable ASCII, and %', () => {
    expect(grpcMessage('could not connect to the upstream')).toBe('could not connect to the upstream');
    expect(grpcMessage('100% ü\n')).toBe('100%25 %C3%BC%0A');
    expect(decodeURIComponent(grpcMessage('100% ü\n'))).toBe('100% ü\n');
  });

  it('a gRPC request is HTTP/2 with application/grpc (+proto…), not gRPC-Web, not HTTP/1', () => {
    const req = (v: number, ct?: string) => ({
      httpVersionMajor: v,
      headers: ct ? { 'content-type': ct } : {},
    });
    expect(isGrpcRequest(req(2, 'application/grpc'))).toBe(true);
    expect(isGrpcRequest(req(2, 'application/grpc+proto'))).toBe(true);
    expect(isGrpcRequest(req(2, 'application/grpc-web'))).toBe(false);
    expect(isGrpcRequest(req(1, 'application/grpc'))).toBe(false);
    expect(isGrpcRequest(req(2, 'application/json'))).toBe(false);
    expect(isGrpcRequest(req(2))).toBe(false);
  });
});

describe('RFC 8441 tunnels', () => {
  it('the upstream handshake gets a fresh Sec-WebSocket-Key (a client copy is dropped) and a version', () => {
    const h = http1HandshakeHeaders(['sec-websocket-key', 'client-chosen', 'sec-websocket-protocol', 'chat']);
    const keys = h.filter((_, i) => i % 2 === 0);
    expect(keys.filter((k) => k === 'sec-websocket-key')).toHaveLength(1);
    const key = h[h.indexOf('sec-websocket-key') + 1]!;
    expect(key).not.toBe('client-chosen');
    expect(Buffer.from(key, 'base64')).toHaveLength(16);
    expect(h[h.indexOf('sec-websocket-version') + 1]).toBe('13');
    expect(h[h.indexOf('sec-websocket-protocol') + 1]).toBe('chat');
    const kept = http1HandshakeHeaders(['Sec-WebSocket-Version', '13']);
    expect(kept.filter((x) => x.toLowerCase() === 'sec-websocket-version')).toHaveLength(1);
  });
});

describe('upstream HTTP/2 session ends', () => {
  const err = (code: string | undefined, message: string) => Object.assign(new Error(message), { code });
  it('counts failures by reason and leaves ordinary ends alone', () => {
    expect(sessionEndReason(undefined)).toBeUndefined();
    expect(sessionEndReason(err('UND_ERR_INFO', 'socket idle timeout'))).toBeUndefined();
    expect(
      sessionEndReason(err('UND_ERR_INFO', 'HTTP/2: "GOAWAY" frame received with code 0')),
    ).toBeUndefined();
    expect(sessionEndReason(err('UND_ERR_DESTROYED', 'destroyed'))).toBeUndefined();
    expect(sessionEndReason(err('UND_ERR_SOCKET', 'HTTP/2: "GOAWAY" frame received with code 2'))).toBe(
      'goaway',
    );
    expect(sessionEndReason(err('ERR_HTTP2_SESSION_ERROR', 'Session closed with error code 1'))).toBe(
      'protocol',
    );
    expect(sessionEndReason(err('UND_ERR_SOCKET', 'other side closed'))).toBe('closed');
    expect(sessionEndReason(err('ECONNRESET', 'read ECONNRESET'))).toBe('closed');
  });
});
