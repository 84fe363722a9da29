// Kubernetes Ingresses served by edgegate (`--ingress`), against the real kube-apiserver: Ingresses written as
// ingress-nginx users write them (networking.k8s.io/v1, nginx.ingress.kubernetes.io/* annotations), Services whose
// EndpointSlices name echo upstreams in a network namespace, and a request per behaviour. Class selection (own
// class, another controller's class, the legacy annotation, the default class), paths, the default backend, TLS
// from a Secret, each supported annotation, refused snippets and reported unsupported annotations (Events and log
// lines), and status.loadBalancer written with the published addresses.
import { createServer, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { type AddressInfo, connect } from 'node:net';
import { PassThrough, Readable } from 'node:stream';
import { request as undiciRequest } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import winston from 'winston';
import { stringify } from 'yaml';
import { type RunningGateway, runGateway } from '../../../src/run.ts';
import { kubeLogs, printLogsOnFailure } from '../../support/logs.ts';
import { scrapeMetrics } from '../../support/prom-text.ts';
import { sharedKube } from '../../support/shared.ts';
import { makeTempDir } from '../../support/tmp.ts';
import { waitFor } from '../../support/wait.ts';
import { makeCert, type TestCert } from '../tls/helpers.ts';
import { apply, ensureNamespace, installCrd, rand } from './helpers.ts';
import { type NetnsUpstreams, startNetnsUpstreams, UPSTREAM_PORT } from './netns-upstreams.ts';

const kube = sharedKube();
printLogsOnFailure(() => kubeLogs(kube));
const id = rand();
const ns = `eg-ing-${id}`;
const cls = `eg-ing-${id}`;
const otherCls = `eg-ing-other-${id}`;
const legacy = `eg-legacy-${id}`;
const N = 'nginx.ingress.kubernetes.io/';
const PUBLISH = ['192.0.2.77', 'edge.example.net'];

let up: NetnsUpstreams;
let gw: RunningGateway;
let auth: Server;
let cert: TestCert;
const logLines: string[] = [];

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** The echo's JSON, when the upstream answered. */
  echo?: { name: string; path: string; url: string; headers: Record<string, string> };
}

async function call(
  host: string,
  path = '/',
  headers: Record<string, string> = {},
  method: 'GET' | 'OPTIONS' = 'GET',
): Promise<Answer> {
  const r = await undiciRequest(`http://127.0.0.1:${gw.proxyAddress.port}${path}`, {
    method,
    headers: { host, ...headers },
    headersTimeout: 10_000,
  });
  const body = await r.body.text();
  const answer: Answer = { status: r.statusCode, headers: r.headers, body };
  if (r.headers['x-echo-name']) answer.echo = JSON.parse(body);
  return answer;
}

/** A POST of `size` bytes, with a Content-Length or chunked (no length). */
async function post(host: string, size: number, chunked: boolean): Promise<Answer> {
  const data = Buffer.alloc(size, 'x');
  const body = chunked ? Readable.from([data.subarray(0, size >> 1), data.subarray(size >> 1)]) : data;
  const r = await undiciRequest(`http://127.0.0.1:${gw.proxyAddress.port}/upload`, {
    method: 'POST',
    headers: { host },
    body,
    headersTimeout: 10_000,
  });
  const text = await r.body.text();
  const answer: Answer = { status: r.statusCode, headers: r.headers, body: text };
  if (r.headers['x-echo-name']) answer.echo = JSON.parse(text);
  return answer;
}

function httpsCall(host: string, path: string): Promise<{ status: number; body: string; issuer: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port: gw.tlsAddress!.port,
        servername: host,
        path,
        headers: { host },
        ca: cert.certPem,
        agent: false,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, issuer: '' }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

const svcPath = (path: string, service: string, pathType = 'Prefix') => ({
  path,
  pathType,
  backend: { service: { name: service, port: { number: 80 } } },
});

function ingress(
  name: string,
  annotations: Record<string, string>,
  host: string | undefined,
  paths: ReturnType<typeof svcPath>[],
  extra: Record<string, unknown> = {},
  className: string | null = cls,
) {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name, namespace: ns, annotations },
    spec: {
      ...(className ? { ingressClassName: className } : {}),
      ...extra,
      rules: [{ ...(host ? { host } : {}), http: { paths } }],
    },
  };
}

function service(name: string, addresses: string[]) {
  return [
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace: ns },
      spec: { ports: [{ name: 'http', port: 80, targetPort: UPSTREAM_PORT }] },
    },
    {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: `${name}-1`, namespace: ns, labels: { 'kubernetes.io/service-name': name } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: UPSTREAM_PORT, protocol: 'TCP' }],
      endpoints: addresses.map((a) => ({ addresses: [a], conditions: { ready: true } })),
    },
  ];
}

async function applyAll(objects: unknown[]): Promise<void> {
  await apply(kube, objects.map((o) => stringify(o)).join('---\n'));
}

async function events(name: string): Promise<{ reason: string; note: string; type: string }[]> {
  const r = await kube.request('GET', `/apis/events.k8s.io/v1/namespaces/${ns}/events`);
  const list = r.json<{
    items: { reason: string; note: string; type: string; regarding: { kind: string; name: string } }[];
  }>();
  return list.items.filter((e) => e.regarding.kind === 'Ingress' && e.regarding.name === name);
}

beforeAll(async () => {
  // IngressClasses are cluster-scoped: remove what an aborted earlier run left behind.
  const stale = await kube.kubectl(['get', 'ingressclass', '-o', 'name'], { allowFailure: true });
  for (const n of stale.stdout.split('\n'))
    if (n.startsWith('ingressclass.networking.k8s.io/eg-ing-'))
      await kube.kubectl(['delete', n, '--wait=false'], { allowFailure: true });

  up = await startNetnsUpstreams(['stable', 'preview', 'api', 'fallback'], 1);
  const a = (n: string) => up.addressOf(n);
  auth = createServer((req, res) => {
    if (req.headers.authorization === 'Bearer letmein') {
      res.writeHead(200, { 'x-user': 'alice' });
      res.end();
    } else {
      res.writeHead(401, { 'content-type': 'text/plain' });
      res.end('who are you');
    }
  });
  await new Promise<void>((r) => auth.listen(0, '127.0.0.1', r));
  const authPort = (auth.address() as AddressInfo).port;
  cert = makeCert(makeTempDir('eg-ing-cert'), 'ing', 'tls.ing.test');

  await installCrd(kube);
  await ensureNamespace(kube, ns);
  await applyAll([
    {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'IngressClass',
      metadata: { name: cls },
      spec: { controller: 'edgegate.io/ingress-controller' },
    },
    {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'IngressClass',
      metadata: { name: otherCls },
      spec: { controller: 'k8s.io/ingress-nginx' },
    },
    ...service('stable', [a('stable')]),
    ...service('preview', [a('preview')]),
    ...service('api', [a('api')]),
    ...service('fallback', [a('fallback')]),
    ...service('pair', [a('stable'), a('preview')]),
    // One live endpoint and one address where nothing listens.
    ...service('flaky', [a('stable'), up.spare(0)]),
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'tls-ing', namespace: ns },
      type: 'kubernetes.io/tls',
      data: {
        'tls.crt': Buffer.from(cert.certPem).toString('base64'),
        'tls.key': Buffer.from(cert.keyPem).toString('base64'),
      },
    },
    ingress('basic', {}, 'basic.ing.test', [svcPath('/api', 'api'), svcPath('/exact', 'stable', 'Exact')], {
      defaultBackend: { service: { name: 'fallback', port: { name: 'http' } } },
    }),
    ingress('wild', {}, '*.wild.ing.test', [svcPath('/', 'stable')]),
    ingress('rewrite', { [`${N}use-regex`]: 'true', [`${N}rewrite-target`]: '/$2' }, 'rw.ing.test', [
      svcPath('/something(/|$)(.*)', 'stable', 'ImplementationSpecific'),
    ]),
    ingress('regex', { [`${N}use-regex`]: 'true' }, 're.ing.test', [
      svcPath('/items/[0-9]+', 'stable', 'ImplementationSpecific'),
    ]),
    ingress('tls', {}, 'tls.ing.test', [svcPath('/', 'stable')], {
      tls: [{ hosts: ['tls.ing.test'], secretName: 'tls-ing' }],
    }),
    ingress('nossl', { [`${N}ssl-redirect`]: 'false' }, 'nossl.ing.test', [svcPath('/', 'stable')], {
      tls: [{ hosts: ['nossl.ing.test'], secretName: 'tls-ing' }],
    }),
    ingress('force', { [`${N}force-ssl-redirect`]: 'true' }, 'force.ing.test', [svcPath('/', 'stable')]),
    ingress('slow', { [`${N}proxy-read-timeout`]: '1' }, 'slow.ing.test', [svcPath('/', 'stable')]),
    ingress('tries', { [`${N}proxy-next-upstream-tries`]: '1' }, 'tries.ing.test', [svcPath('/', 'flaky')]),
    ingress('retries', { [`${N}proxy-next-upstream-tries`]: '3' }, 'retries.ing.test', [
      svcPath('/', 'flaky'),
    ]),
    ingress('bodysize', { [`${N}proxy-body-size`]: '1k' }, 'body.ing.test', [svcPath('/', 'stable')]),
    ingress('limited', { [`${N}limit-rps`]: '1' }, 'limit.ing.test', [svcPath('/', 'stable')]),
    ingress('allow', { [`${N}whitelist-source-range`]: '10.0.0.0/8' }, 'allow.ing.test', [
      svcPath('/', 'stable'),
    ]),
    ingress('allow-me', { [`${N}whitelist-source-range`]: '10.0.0.0/8,127.0.0.0/8' }, 'allowme.ing.test', [
      svcPath('/', 'stable'),
    ]),
    ingress('deny', { [`${N}denylist-source-range`]: '127.0.0.0/8' }, 'deny.ing.test', [
      svcPath('/', 'stable'),
    ]),
    ingress('main', {}, 'canary.ing.test', [svcPath('/', 'stable')]),
    ingress(
      'canary',
      {
        [`${N}canary`]: 'true',
        [`${N}canary-weight`]: '0',
        [`${N}canary-by-header`]: 'X-Canary',
        [`${N}canary-by-cookie`]: 'canary',
      },
      'canary.ing.test',
      [svcPath('/', 'preview')],
    ),
    ingress('main2', {}, 'canary2.ing.test', [svcPath('/', 'stable')]),
    ingress('canary2', { [`${N}canary`]: 'true', [`${N}canary-weight`]: '100' }, 'canary2.ing.test', [
      svcPath('/', 'preview'),
    ]),
    ingress('main3', {}, 'canary3.ing.test', [svcPath('/', 'stable')]),
    ingress(
      'canary3',
      { [`${N}canary`]: 'true', [`${N}canary-by-header`]: 'X-Region', [`${N}canary-by-header-value`]: 'eu' },
      'canary3.ing.test',
      [svcPath('/', 'preview')],
    ),
    ingress(
      'sticky',
      { [`${N}affinity`]: 'cookie', [`${N}session-cookie-name`]: 'route' },
      'sticky.ing.test',
      [svcPath('/', 'pair')],
    ),
    ingress(
      'vhost',
      { [`${N}upstream-vhost`]: 'internal.example', [`${N}x-forwarded-prefix`]: '/shop' },
      'vhost.ing.test',
      [svcPath('/', 'stable')],
    ),
    ingress('tls-backend', { [`${N}backend-protocol`]: 'HTTPS' }, 'hb.ing.test', [svcPath('/', 'stable')]),
    ingress('approot', { [`${N}app-root`]: '/app' }, 'approot.ing.test', [svcPath('/', 'stable')]),
    ingress('moved', { [`${N}permanent-redirect`]: 'https://new.example.com/landing' }, 'moved.ing.test', [
      svcPath('/', 'stable'),
    ]),
    ingress('tmp', { [`${N}temporal-redirect`]: 'https://tmp.example.com/' }, 'tmp.ing.test', [
      svcPath('/', 'stable'),
    ]),
    ingress(
      'auth',
      { [`${N}auth-url`]: `http://127.0.0.1:${authPort}/check`, [`${N}auth-response-headers`]: 'X-User' },
      'auth.ing.test',
      [svcPath('/', 'stable')],
    ),
    ingress(
      'snippet',
      { [`${N}configuration-snippet`]: 'more_set_headers "X-Evil: 1";' },
      'snippet.ing.test',
      [svcPath('/', 'stable')],
    ),
    ingress('evolving', {}, 'evolve.ing.test', [svcPath('/', 'stable')]),
    ingress(
      'basic-auth',
      { [`${N}auth-type`]: 'basic', [`${N}auth-secret`]: 'htpasswd' },
      'basicauth.ing.test',
      [svcPath('/', 'stable')],
    ),
    ingress(
      'cors',
      {
        [`${N}enable-cors`]: 'true',
        [`${N}cors-allow-origin`]: 'https://app.example, https://*.shop.example',
        [`${N}cors-max-age`]: '600',
      },
      'cors.ing.test',
      [svcPath('/', 'stable')],
    ),
    ingress('unsupported', { [`${N}proxy-buffer-size`]: '8k' }, 'unsupported.ing.test', [
      svcPath('/', 'stable'),
    ]),
    ingress('other', {}, 'other.ing.test', [svcPath('/', 'stable')], {}, otherCls),
    ingress(
      'legacy',
      { 'kubernetes.io/ingress.class': legacy },
      'legacy.ing.test',
      [svcPath('/', 'stable')],
      {},
      null,
    ),
    ingress('noclass', {}, 'noclass.ing.test', [svcPath('/', 'stable')], {}, null),
  ]);

  const stream = new PassThrough();
  stream.on('data', (d: Buffer) => logLines.push(...d.toString().split('\n').filter(Boolean)));
  gw = await runGateway({
    listen: '127.0.0.1:0',
    listenTls: '127.0.0.1:0',
    admin: '127.0.0.1:0',
    logLevel: 'warn',
    logger: winston.createLogger({
      level: 'warn',
      format: winston.format.json(),
      transports: [new winston.transports.Stream({ stream })],
    }),
    policy: { overloadDelayMs: 0 },
    kube: {
      kubeconfig: kube.kubeconfigPath,
      namespaces: [ns],
      leaseNamespace: ns,
      identity: 'ingress-test',
      retryPeriodMs: 500,
      renewDeadlineMs: 3000,
      leaseDurationMs: 4000,
      tlsSecretNamespaces: [ns],
      ingress: { legacyClassName: legacy, publish: PUBLISH },
    },
  });
  await waitFor(async () => (await call('basic.ing.test', '/api')).status === 200, {
    timeoutMs: 30_000,
    message: 'basic.ing.test served',
  });
}, 120_000);

afterAll(async () => {
  await gw?.stop();
  auth?.close();
  await up?.stop();
  await kube.kubectl(['delete', 'ingressclass', cls, otherCls, '--wait=false'], { allowFailure: true });
  await kube.kubectl(['delete', 'namespace', ns, '--wait=false'], { allowFailure: true });
});

describe('class selection', () => {
  it('serves its own class, ignores another controller’s class, serves the legacy annotation', async () => {
    expect((await call('basic.ing.test', '/api')).echo?.name).toBe('api');
    expect((await call('legacy.ing.test')).echo?.name).toBe('stable');
    // Another controller's Ingress: not served (the catch-all default backend of `basic` answers instead).
    expect((await call('other.ing.test')).echo?.name).toBe('fallback');
  });

  it('an Ingress without a class is served once edgegate’s IngressClass becomes the default', async () => {
    expect((await call('noclass.ing.test')).echo?.name).toBe('fallback');
    await kube.kubectl([
      'annotate',
      'ingressclass',
      cls,
      'ingressclass.kubernetes.io/is-default-class=true',
      '--overwrite',
    ]);
    try {
      await waitFor(async () => (await call('noclass.ing.test')).echo?.name === 'stable', {
        timeoutMs: 10_000,
        message: 'noclass.ing.test served by the default class',
      });
    } finally {
      await kube.kubectl(['annotate', 'ingressclass', cls, 'ingressclass.kubernetes.io/is-default-class-']);
    }
    await waitFor(async () => (await call('noclass.ing.test')).echo?.name === 'fallback', {
      timeoutMs: 10_000,
      message: 'noclass.ing.test no longer served without a default class',
    });
  });
});

describe('rules and backends', () => {
  it('Prefix matches element-wise, Exact only the path; the default backend takes the rest, any host', async () => {
    expect((await call('basic.ing.test', '/api/v1/orders')).echo?.name).toBe('api');
    expect((await call('basic.ing.test', '/apiary')).echo?.name).toBe('fallback');
    expect((await call('basic.ing.test', '/exact')).echo?.name).toBe('stable');
    expect((await call('basic.ing.test', '/exact/more')).echo?.name).toBe('fallback');
    expect((await call('nobody.example', '/')).echo?.name).toBe('fallback');
  });

  it('a wildcard host serves its subdomains', async () => {
    expect((await call('a.wild.ing.test')).echo?.name).toBe('stable');
  });

  it('TLS from a Secret: served over HTTPS; plain HTTP is redirected with 308 (ssl-redirect default)', async () => {
    const https = await waitFor(async () => httpsCall('tls.ing.test', '/hello?x=1').catch(() => undefined), {
      timeoutMs: 15_000,
      message: 'tls.ing.test over HTTPS with the Secret’s certificate',
    });
    expect(https.status).toBe(200);
    expect(JSON.parse(https.body).name).toBe('stable');
    const plain = await call('tls.ing.test', '/hello?x=1');
    expect(plain.status).toBe(308);
    expect(plain.headers.location).toBe('https://tls.ing.test/hello?x=1');
  });

  it('ssl-redirect: a plain-HTTP WebSocket upgrade is refused, not tunnelled', async () => {
    const socket = connect(gw.proxyAddress.port, '127.0.0.1');
    socket.write(
      'GET /ws HTTP/1.1\r\nHost: tls.ing.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
        'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    );
    let head = '';
    for await (const chunk of socket) {
      head += chunk.toString();
      if (head.includes('\r\n')) break;
    }
    socket.destroy();
    expect(head.split('\r\n')[0]).toBe('HTTP/1.1 400 Bad Request');
  });

  it('ssl-redirect: "false" keeps plain HTTP; force-ssl-redirect redirects without TLS', async () => {
    expect((await call('nossl.ing.test')).echo?.name).toBe('stable');
    const forced = await call('force.ing.test', '/p');
    expect(forced.status).toBe(308);
    expect(forced.headers.location).toBe('https://force.ing.test/p');
  });
});

describe('annotations', () => {
  it('rewrite-target with capture groups (use-regex)', async () => {
    const a = await call('rw.ing.test', '/something/new/path?q=1');
    expect(a.echo?.path).toBe('/new/path');
    expect(a.echo?.url).toBe('/new/path?q=1');
    expect((await call('rw.ing.test', '/something')).echo?.path).toBe('/');
  });

  it('use-regex paths', async () => {
    expect((await call('re.ing.test', '/items/42')).echo?.name).toBe('stable');
    expect((await call('re.ing.test', '/items/abc')).echo?.name).toBe('fallback');
  });

  it('proxy-read-timeout: an upstream slower than it gets 504', async () => {
    const a = await call('slow.ing.test', '/?delay=2500');
    expect(a.status).toBe(504);
    expect((await call('slow.ing.test', '/?delay=10')).status).toBe(200);
  });

  it('proxy-next-upstream-tries: 1 never retries the dead endpoint; 3 does', async () => {
    const once = await Promise.all(Array.from({ length: 4 }, () => call('tries.ing.test')));
    expect(once.some((a) => a.status >= 502)).toBe(true);
    const retried = [];
    for (let i = 0; i < 6; i++) retried.push((await call('retries.ing.test')).status);
    expect(retried).toEqual([200, 200, 200, 200, 200, 200]);
  });

  it('proxy-body-size: a larger body gets 413 whether it declares its length or not; a smaller one goes through', async () => {
    expect((await post('body.ing.test', 2000, false)).status).toBe(413);
    expect((await post('body.ing.test', 2000, true)).status).toBe(413);
    const small = await post('body.ing.test', 1000, false);
    expect((small.echo as unknown as { bodyBytes: number }).bodyBytes).toBe(1000);
    const smallChunked = await post('body.ing.test', 1024, true);
    expect((smallChunked.echo as unknown as { bodyBytes: number }).bodyBytes).toBe(1024);
  });

  it('limit-rps: beyond the rate and its burst (5 × rps), 429', async () => {
    const statuses = [];
    for (let i = 0; i < 12; i++) statuses.push((await call('limit.ing.test')).status);
    expect(statuses.slice(0, 5)).toEqual([200, 200, 200, 200, 200]);
    expect(statuses).toContain(429);
  });

  it('whitelist-source-range and denylist-source-range', async () => {
    expect((await call('allow.ing.test')).status).toBe(403);
    expect((await call('allowme.ing.test')).status).toBe(200);
    expect((await call('deny.ing.test')).status).toBe(403);
  });

  it('canary by header (always / never), by cookie, by weight, by header value', async () => {
    expect((await call('canary.ing.test')).echo?.name).toBe('stable');
    expect((await call('canary.ing.test', '/', { 'x-canary': 'always' })).echo?.name).toBe('preview');
    expect((await call('canary.ing.test', '/', { 'x-canary': 'never' })).echo?.name).toBe('stable');
    expect((await call('canary.ing.test', '/', { cookie: 'canary=always' })).echo?.name).toBe('preview');
    for (let i = 0; i < 4; i++) expect((await call('canary2.ing.test')).echo?.name).toBe('preview');
    expect((await call('canary3.ing.test', '/', { 'x-region': 'eu' })).echo?.name).toBe('preview');
    expect((await call('canary3.ing.test', '/', { 'x-region': 'us' })).echo?.name).toBe('stable');
  });

  it('affinity: cookie — one cookie value keeps its endpoint', async () => {
    for (const value of ['a', 'b', 'c']) {
      const seen = new Set<string>();
      for (let i = 0; i < 6; i++)
        seen.add((await call('sticky.ing.test', '/', { cookie: `route=${value}` })).echo!.name);
      expect(seen.size).toBe(1);
    }
  });

  it('enable-cors with cors-allow-origin (wildcard) and cors-max-age; ingress-nginx defaults for the rest', async () => {
    // A preflight is answered by the gateway (the upstream never sees it), with nginx's default methods and
    // credentials allowed (so the origin is echoed, never "*").
    const pre = await call(
      'cors.ing.test',
      '/api',
      {
        origin: 'https://app.example',
        'access-control-request-method': 'PUT',
        'access-control-request-headers': 'authorization',
      },
      'OPTIONS',
    );
    expect(pre.status).toBe(204);
    expect(pre.echo).toBeUndefined();
    expect(pre.headers['access-control-allow-origin']).toBe('https://app.example');
    expect(pre.headers['access-control-allow-credentials']).toBe('true');
    expect(pre.headers['access-control-max-age']).toBe('600');
    expect(String(pre.headers['access-control-allow-methods'])).toContain('PUT');
    expect(String(pre.headers['access-control-allow-headers']).toLowerCase()).toContain('authorization');
    // An actual request from a subdomain the wildcard allows gets the headers; the upstream answers it.
    const ok = await call('cors.ing.test', '/api', { origin: 'https://a.b.shop.example' });
    expect(ok.echo?.name).toBe('stable');
    expect(ok.headers['access-control-allow-origin']).toBe('https://a.b.shop.example');
    // Another origin is served without CORS headers (the browser then withholds the answer).
    const other = await call('cors.ing.test', '/api', { origin: 'https://evil.example' });
    expect(other.echo?.name).toBe('stable');
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('upstream-vhost and x-forwarded-prefix', async () => {
    const a = await call('vhost.ing.test');
    expect(a.echo?.headers.host).toBe('internal.example');
    expect(a.echo?.headers['x-forwarded-prefix']).toBe('/shop');
  });

  it('backend-protocol: HTTPS speaks TLS to the backend (an HTTP-only upstream fails the handshake: 502)', async () => {
    expect((await call('hb.ing.test')).status).toBe(502);
  });

  it('app-root, permanent-redirect, temporal-redirect', async () => {
    const root = await call('approot.ing.test', '/');
    expect(root.status).toBe(302);
    expect(root.headers.location).toBe('http://approot.ing.test/app');
    expect((await call('approot.ing.test', '/app')).echo?.path).toBe('/app');
    const moved = await call('moved.ing.test', '/old');
    expect(moved.status).toBe(301);
    expect(moved.headers.location).toBe('https://new.example.com/landing');
    const tmp = await call('tmp.ing.test', '/old');
    expect(tmp.status).toBe(302);
    expect(tmp.headers.location).toBe('https://tmp.example.com/');
  });

  it('auth-url: the auth service’s denial is returned; its X-User goes upstream on success', async () => {
    const denied = await call('auth.ing.test');
    expect(denied.status).toBe(401);
    const ok = await call('auth.ing.test', '/', { authorization: 'Bearer letmein' });
    expect(ok.echo?.headers['x-user']).toBe('alice');
  });
});

describe('reporting', () => {
  it('IngressNightmare (CVE-2025-1974 family): a snippet refuses the Ingress (not served) with an Event and a log line naming it', async () => {
    expect((await call('snippet.ing.test')).echo?.name).toBe('fallback');
    const ev = await waitFor(async () => (await events('snippet')).find((e) => e.reason === 'Refused'), {
      timeoutMs: 10_000,
      message: 'Refused event on Ingress snippet',
    });
    expect(ev.type).toBe('Warning');
    expect(ev.note).toContain(`${N}configuration-snippet`);
    expect(ev.note).toContain('CVE-2025-1974');
    expect(
      logLines.some((l) => l.includes(`Ingress ${ns}/snippet`) && l.includes('configuration-snippet')),
    ).toBe(true);
  });

  it('fail open prevented: basic auth edgegate cannot honour refuses the Ingress instead of serving it unprotected', async () => {
    expect((await call('basicauth.ing.test')).echo?.name).toBe('fallback');
    const ev = await waitFor(async () => (await events('basic-auth')).find((e) => e.reason === 'Refused'), {
      timeoutMs: 10_000,
      message: 'Refused event on Ingress basic-auth',
    });
    expect(ev.note).toContain(`${N}auth-`);
  });

  it('an unsupported annotation is served without it, with an Event and a log line naming it', async () => {
    expect((await call('unsupported.ing.test')).echo?.name).toBe('stable');
    const ev = await waitFor(
      async () => (await events('unsupported')).find((e) => e.reason === 'UnsupportedAnnotation'),
      { timeoutMs: 10_000, message: 'UnsupportedAnnotation event on Ingress unsupported' },
    );
    expect(ev.note).toContain(`${N}proxy-buffer-size`);
    expect(
      logLines.some((l) => l.includes(`Ingress ${ns}/unsupported`) && l.includes('proxy-buffer-size')),
    ).toBe(true);
  });

  it('a refused update keeps the last valid version serving; deleting the Ingress stops serving it', async () => {
    expect((await call('evolve.ing.test')).echo?.name).toBe('stable');
    await kube.kubectl([
      'annotate',
      'ingress',
      '-n',
      ns,
      'evolving',
      `${N}server-snippet=location /x { return 200; }`,
      `${N}whitelist-source-range=10.0.0.0/8`,
    ]);
    const ev = await waitFor(
      async () =>
        (await events('evolving')).find((e) => e.reason === 'Refused' && e.note.includes('keeps serving')),
      { timeoutMs: 10_000, message: 'Refused event on Ingress evolving' },
    );
    expect(ev.note).toContain('last valid version');
    // Neither the snippet nor the new allow list: the previous version, as it was.
    expect((await call('evolve.ing.test')).echo?.name).toBe('stable');
    await kube.kubectl(['delete', 'ingress', '-n', ns, 'evolving']);
    await waitFor(async () => (await call('evolve.ing.test')).echo?.name === 'fallback', {
      timeoutMs: 10_000,
      message: 'evolve.ing.test no longer served after the delete',
    });
  });

  it('status.loadBalancer.ingress holds the published addresses on served Ingresses only', async () => {
    const lb = async (name: string) => {
      const r = await kube.request('GET', `/apis/networking.k8s.io/v1/namespaces/${ns}/ingresses/${name}`);
      return r.json<{ status?: { loadBalancer?: { ingress?: unknown[] } } }>().status?.loadBalancer?.ingress;
    };
    const written = await waitFor(async () => lb('basic'), {
      timeoutMs: 15_000,
      message: 'basic status written',
    });
    expect(written).toEqual([{ ip: '192.0.2.77' }, { hostname: 'edge.example.net' }]);
    expect(await lb('other')).toBeUndefined();
    expect(await lb('snippet')).toBeUndefined();
    // Moved to another controller's class: edgegate stops serving it and takes its addresses off.
    await waitFor(async () => (await lb('legacy'))?.length === 2, {
      timeoutMs: 15_000,
      message: 'legacy status',
    });
    await kube.kubectl([
      'annotate',
      'ingress',
      '-n',
      ns,
      'legacy',
      'kubernetes.io/ingress.class=nginx',
      '--overwrite',
    ]);
    await waitFor(async () => ((await lb('legacy')) ?? []).length === 0, {
      timeoutMs: 15_000,
      message: 'legacy status cleared after its class changed',
    });
    await waitFor(async () => (await call('legacy.ing.test')).echo?.name === 'fallback', {
      timeoutMs: 10_000,
      message: 'legacy.ing.test no longer served after its class changed',
    });
  });

  it('metrics: refused Ingresses, unsupported annotations, status writes', async () => {
    const prom = await scrapeMetrics(`http://127.0.0.1:${gw.adminAddress.port}`);
    const value = (name: string, labels: Record<string, string> = {}) =>
      prom.samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
        ?.value;
    expect(value('edgegate_ingress_refused')).toBe(2); // snippet, basic-auth
    expect(value('edgegate_ingress_unsupported_annotations')).toBe(1); // unsupported's proxy-buffer-size
    expect(value('edgegate_ingress_status_writes_total', { result: 'ok' })).toBeGreaterThan(0);
    expect(value('edgegate_kube_informer_synced', { resource: 'ingresses' })).toBe(1);
    expect(value('edgegate_kube_informer_synced', { resource: 'ingressclasses' })).toBe(1);
  });
});
