/**
 * A real gRPC service for tests (@grpc/grpc-js server and client, no .proto: messages are JSON objects with JSON
 * serializers, which is all gRPC's framing cares about). `test.Echo` has one method of each kind — unary, server
 * streaming, client streaming, bidi — plus `Fail` (an error status with a message and trailing metadata of the
 * caller's choosing) and `Hang` (never answers; records when the call is cancelled, for deadlines).
 */
import * as grpc from '@grpc/grpc-js';

export interface Msg {
  text?: string;
  n?: number;
  code?: number;
  /** Set by the server: which server answered, and the request's metadata it saw. */
  server?: string;
  /** Milliseconds left of the call's deadline as the server saw it (grpc-timeout); absent: no deadline. */
  deadlineMs?: number;
  authority?: string;
}

const json = {
  requestSerialize: (m: Msg) => Buffer.from(JSON.stringify(m)),
  requestDeserialize: (b: Buffer) => JSON.parse(b.toString()) as Msg,
  responseSerialize: (m: Msg) => Buffer.from(JSON.stringify(m)),
  responseDeserialize: (b: Buffer) => JSON.parse(b.toString()) as Msg,
};

function method(name: string, requestStream: boolean, responseStream: boolean) {
  return { path: `/test.Echo/${name}`, requestStream, responseStream, ...json };
}

export const ECHO_SERVICE = {
  Unary: method('Unary', false, false),
  ServerStream: method('ServerStream', false, true),
  ClientStream: method('ClientStream', true, false),
  Bidi: method('Bidi', true, true),
  Fail: method('Fail', false, false),
  Hang: method('Hang', false, false),
} satisfies grpc.ServiceDefinition;

export interface EchoClient extends grpc.Client {
  Unary(m: Msg, md: grpc.Metadata, o: grpc.CallOptions, cb: grpc.requestCallback<Msg>): grpc.ClientUnaryCall;
  ServerStream(m: Msg, md?: grpc.Metadata, o?: grpc.CallOptions): grpc.ClientReadableStream<Msg>;
  ClientStream(
    md: grpc.Metadata,
    o: grpc.CallOptions,
    cb: grpc.requestCallback<Msg>,
  ): grpc.ClientWritableStream<Msg>;
  Bidi(md?: grpc.Metadata, o?: grpc.CallOptions): grpc.ClientDuplexStream<Msg, Msg>;
  Fail(m: Msg, md: grpc.Metadata, o: grpc.CallOptions, cb: grpc.requestCallback<Msg>): grpc.ClientUnaryCall;
  Hang(m: Msg, md: grpc.Metadata, o: grpc.CallOptions, cb: grpc.requestCallback<Msg>): grpc.ClientUnaryCall;
}

const EchoClientCtor = grpc.makeGenericClientConstructor(ECHO_SERVICE, 'Echo') as unknown as new (
  target: string,
  creds: grpc.ChannelCredentials,
  options?: grpc.ChannelOptions,
) => EchoClient;

export interface GrpcEchoServer {
  port: number;
  /** Calls received, by method name. */
  calls: Record<string, number>;
  /** Hang calls whose cancellation the server saw (the deadline travelled through the gateway). */
  cancelled: number;
  close(): Promise<void>;
}

function seen(call: grpc.ServerUnaryCall<Msg, Msg> | grpc.ServerReadableStream<Msg, Msg>, name: string): Msg {
  const d = call.getDeadline();
  const at = d instanceof Date ? d.getTime() : d;
  return { server: name, ...(Number.isFinite(at) ? { deadlineMs: at - Date.now() } : {}) };
}

/** A grpc-js server with the Echo service, plaintext (h2c, prior knowledge) on 127.0.0.1. */
export async function startGrpcEcho(name = 'grpc-echo', port = 0): Promise<GrpcEchoServer> {
  const server = new grpc.Server();
  const state: GrpcEchoServer = {
    port: 0,
    calls: {},
    cancelled: 0,
    close: () =>
      new Promise<void>((resolve) => {
        server.forceShutdown();
        resolve();
      }),
  };
  const count = (m: string) => {
    state.calls[m] = (state.calls[m] ?? 0) + 1;
  };
  server.addService(ECHO_SERVICE, {
    Unary(call: grpc.ServerUnaryCall<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) {
      count('Unary');
      cb(null, { ...seen(call, name), text: call.request.text, n: call.request.n });
    },
    ServerStream(call: grpc.ServerWritableStream<Msg, Msg>) {
      count('ServerStream');
      const n = call.request.n ?? 3;
      for (let i = 0; i < n; i++) call.write({ text: `${call.request.text}#${i}`, n: i });
      const trailer = new grpc.Metadata();
      trailer.set('x-stream-count', String(n));
      call.end(trailer);
    },
    ClientStream(call: grpc.ServerReadableStream<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) {
      count('ClientStream');
      const texts: string[] = [];
      call.on('data', (m: Msg) => texts.push(m.text ?? ''));
      call.on('end', () => cb(null, { ...seen(call, name), text: texts.join(','), n: texts.length }));
    },
    Bidi(call: grpc.ServerDuplexStream<Msg, Msg>) {
      count('Bidi');
      call.on('data', (m: Msg) => call.write({ text: `echo:${m.text}`, n: m.n }));
      call.on('end', () => call.end());
    },
    Fail(call: grpc.ServerUnaryCall<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) {
      count('Fail');
      const md = new grpc.Metadata();
      md.set('x-fail-detail', 'from-upstream');
      cb({
        code: call.request.code ?? grpc.status.FAILED_PRECONDITION,
        details: call.request.text ?? 'nope',
        metadata: md,
      });
    },
    Hang(call: grpc.ServerUnaryCall<Msg, Msg>) {
      count('Hang');
      call.on('cancelled', () => {
        state.cancelled++;
      });
    },
  });
  state.port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return state;
}

/** A grpc-js client of test.Echo. `tls`: the gateway's CA (PEM) and the name to verify; else plaintext h2c. */
export function echoClient(
  port: number,
  tls?: { caPem: string; serverName: string },
  authority = 'grpc.test',
): EchoClient {
  const creds = tls ? grpc.credentials.createSsl(Buffer.from(tls.caPem)) : grpc.credentials.createInsecure();
  return new EchoClientCtor(`127.0.0.1:${port}`, creds, {
    'grpc.default_authority': authority,
    ...(tls ? { 'grpc.ssl_target_name_override': tls.serverName } : {}),
    // Fail fast in tests: no reconnect backoff between tests' gateways.
    'grpc.initial_reconnect_backoff_ms': 100,
    'grpc.max_reconnect_backoff_ms': 500,
  });
}

/** A unary call as a promise: the answer, or the ServiceError with its code, details and metadata. */
export function unary(
  client: EchoClient,
  name: 'Unary' | 'Fail' | 'Hang',
  m: Msg,
  opts: grpc.CallOptions = {},
): Promise<{ ok: Msg } | { error: grpc.ServiceError }> {
  return new Promise((resolve) => {
    client[name](m, new grpc.Metadata(), opts, (err, res) => resolve(err ? { error: err } : { ok: res! }));
  });
}

export { grpc };
