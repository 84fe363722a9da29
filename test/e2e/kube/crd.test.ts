// The generated CRD on the real kube-apiserver: every example manifest applies; the schema and the CEL rules
// reject bad manifests with a message naming the field.
import { readdirSync, readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../support/bins.ts';
import { kubeLogs, printLogsOnFailure } from '../../support/logs.ts';
import { sharedKube } from '../../support/shared.ts';
import { apply, ensureNamespace, installCrd, rand, routeYaml } from './helpers.ts';

const kube = sharedKube();
printLogsOnFailure(() => kubeLogs(kube));
const ns = `eg-crd-${rand()}`;

beforeAll(async () => {
  await installCrd(kube);
  await ensureNamespace(kube, ns);
});

const backend = { service: { name: 'web', port: 80 } };

/** Manifests that must be refused, each with the field path (and words) the API server's message must name. */
const bad: Array<[string, Record<string, unknown>, RegExp]> = [
  [
    'unknown field',
    { rules: [{ backends: [{ ...backend, wieght: 3 }] }] },
    /unknown field "spec\.rules\[0\]\.backends\[0\]\.wieght"/,
  ],
  [
    'consul and service',
    { rules: [{ backends: [{ ...backend, consul: { service: 'billing' } }] }] },
    /spec\.rules\[0\]\.backends\[0\]: .*exactly one of consul or service/,
  ],
  [
    'neither consul nor service',
    { rules: [{ backends: [{ weight: 1 }] }] },
    /spec\.rules\[0\]\.backends\[0\]: .*exactly one of consul or service/,
  ],
  [
    'rules and catalog',
    { rules: [{ backends: [backend] }], catalog: { pathPrefix: '/' } },
    /spec: .*either rules or catalog/,
  ],
  ['no rules, no catalog', { hostnames: ['a.example.com'] }, /spec: .*either rules or catalog/],
  [
    'no backends',
    { rules: [{ matches: [{ path: { value: '/a' } }] }] },
    /spec\.rules\[0\]\.backends: Required value: at least one backend/,
  ],
  [
    'redirect with backends',
    {
      rules: [
        { filters: [{ type: 'RequestRedirect', requestRedirect: { statusCode: 301 } }], backends: [backend] },
      ],
    },
    /spec\.rules\[0\]\.backends: Forbidden: a rule with a RequestRedirect filter has no backends/,
  ],
  [
    'filter field not matching its type',
    {
      rules: [
        { filters: [{ type: 'URLRewrite', requestRedirect: { statusCode: 301 } }], backends: [backend] },
      ],
    },
    /spec\.rules\[0\]\.filters\[0\]\.urlRewrite: Required value: filter of type URLRewrite needs urlRewrite/,
  ],
  [
    'weights summing to zero',
    { rules: [{ backends: [{ ...backend, weight: 0 }] }] },
    /spec\.rules\[0\]\.backends: .*weights of a rule must sum above zero/,
  ],
  [
    'a regex that does not compile',
    { rules: [{ matches: [{ path: { type: 'RegularExpression', value: '/a(b' } }], backends: [backend] }] },
    /spec\.rules\[0\]\.matches\[0\]\.path: .*missing closing \).*valid regular expression/,
  ],
  [
    'a header regex that does not compile',
    {
      rules: [
        {
          matches: [{ headers: [{ type: 'RegularExpression', name: 'x', value: '[a' }] }],
          backends: [backend],
        },
      ],
    },
    /spec\.rules\[0\]\.matches\[0\]\.headers\[0\]: .*valid regular expression/,
  ],
  [
    'duplicate hostnames',
    { hostnames: ['a.example.com', 'a.example.com'], rules: [{ backends: [backend] }] },
    /spec\.hostnames\[1\]: Duplicate value: "a\.example\.com"/,
  ],
  [
    'a port out of range',
    { rules: [{ backends: [{ service: { name: 'web', port: 70000 } }] }] },
    /spec\.rules\[0\]\.backends\[0\]\.service\.port: .*less than or equal to 65535/,
  ],
  [
    'a bad hostname',
    { hostnames: ['Bad_Host'], rules: [{ backends: [backend] }] },
    /spec\.hostnames\[0\]: .*should match/,
  ],
  [
    'a path without a slash',
    { rules: [{ matches: [{ path: { type: 'Exact', value: 'a' } }], backends: [backend] }] },
    /spec\.rules\[0\]\.matches\[0\]\.path\.value: .*must start with "\/"/,
  ],
  [
    'ReplacePrefixMatch without its value',
    {
      rules: [
        {
          filters: [{ type: 'URLRewrite', urlRewrite: { path: { type: 'ReplacePrefixMatch' } } }],
          backends: [backend],
        },
      ],
    },
    /spec\.rules\[0\]\.filters\[0\]\.urlRewrite\.path\.replacePrefixMatch: Required value/,
  ],
  [
    'a filter type twice',
    {
      rules: [
        {
          filters: [
            { type: 'RequestHeaderModifier', requestHeaderModifier: {} },
            { type: 'RequestHeaderModifier', requestHeaderModifier: {} },
          ],
          backends: [backend],
        },
      ],
    },
    /spec\.rules\[0\]\.filters: .*each filter type may appear once per rule/,
  ],
  [
    'an unknown method',
    { rules: [{ matches: [{ method: 'FETCH' }], backends: [backend] }] },
    /spec\.rules\[0\]\.matches\[0\]\.method: Unsupported value: "FETCH"/,
  ],
  [
    'ConsistentHash without a key',
    { rules: [{ backends: [backend], loadBalancer: { type: 'ConsistentHash' } }] },
    /spec\.rules\[0\]\.loadBalancer\.consistentHash: .*exactly one of header, cookie or sourceIP/,
  ],
  [
    'ConsistentHash with two keys',
    {
      rules: [
        {
          backends: [backend],
          loadBalancer: { type: 'ConsistentHash', consistentHash: { header: 'x-u', cookie: 'c' } },
        },
      ],
    },
    /spec\.rules\[0\]\.loadBalancer\.consistentHash: .*exactly one of header, cookie or sourceIP/,
  ],
  [
    'consistentHash with another balancer type',
    {
      rules: [
        { backends: [backend], loadBalancer: { type: 'LeastRequest', consistentHash: { header: 'x-u' } } },
      ],
    },
    /spec\.rules\[0\]\.loadBalancer\.consistentHash: Forbidden: consistentHash is only allowed with type ConsistentHash/,
  ],
  [
    'backendRequest above request',
    { rules: [{ backends: [backend], timeouts: { request: '1s', backendRequest: '2s' } }] },
    /spec\.rules\[0\]\.timeouts\.backendRequest: .*backendRequest must not exceed request/,
  ],
  [
    'a CORS origin that is no origin',
    {
      rules: [
        {
          filters: [{ type: 'CORS', cors: { allowOrigins: ['https://ok.example', 'ftp://x/y'] } }],
          backends: [backend],
        },
      ],
    },
    /spec\.rules\[0\]\.filters\[0\]\.cors\.allowOrigins\[1\]: Invalid value: "ftp:\/\/x\/y"/,
  ],
  [
    "CORS '*' alongside other origins",
    {
      rules: [
        {
          filters: [{ type: 'CORS', cors: { allowOrigins: ['*', 'https://a.example'] } }],
          backends: [backend],
        },
      ],
    },
    /spec\.rules\[0\]\.filters\[0\]\.cors\.allowOrigins: .*cannot contain '\*' alongside other values/,
  ],
  [
    'a mirror with percent and fraction',
    {
      rules: [
        {
          filters: [
            {
              type: 'RequestMirror',
              requestMirror: { backendRef: backend, percent: 5, fraction: { numerator: 1 } },
            },
          ],
          backends: [backend],
        },
      ],
    },
    /spec\.rules\[0\]\.filters\[0\]\.requestMirror: .*only one of percent or fraction/,
  ],
  [
    'a mirror fraction above one',
    {
      rules: [
        {
          filters: [
            {
              type: 'RequestMirror',
              requestMirror: { backendRef: backend, fraction: { numerator: 3, denominator: 2 } },
            },
          ],
          backends: [backend],
        },
      ],
    },
    /spec\.rules\[0\]\.filters\[0\]\.requestMirror\.fraction: .*numerator must be less than or equal to denominator/,
  ],
  [
    'CORS on a redirect rule',
    {
      rules: [
        {
          filters: [
            { type: 'RequestRedirect', requestRedirect: { statusCode: 301 } },
            { type: 'CORS', cors: { allowOrigins: ['*'] } },
          ],
        },
      ],
    },
    /spec\.rules\[0\]\.filters: .*RequestRedirect rule cannot have CORS, RequestMirror or ResponseCompression/,
  ],
  [
    'an unknown compression algorithm',
    {
      rules: [
        {
          filters: [{ type: 'ResponseCompression', responseCompression: { algorithms: ['lzma'] } }],
          backends: [backend],
        },
      ],
    },
    /spec\.rules\[0\]\.filters\[0\]\.responseCompression\.algorithms\[0\]: Unsupported value: "lzma"/,
  ],
  [
    'a rate-limit failureMode without scope Global',
    { rules: [{ backends: [backend], policies: { rateLimit: { requests: 5, failureMode: 'Closed' } } }] },
    /spec\.rules\[0\]\.policies\.rateLimit\.failureMode: .*failureMode is only allowed with scope Global/,
  ],
  [
    'an unknown rate-limit scope',
    { rules: [{ backends: [backend], policies: { rateLimit: { requests: 5, scope: 'Cluster' } } }] },
    /spec\.rules\[0\]\.policies\.rateLimit\.scope: Unsupported value: "Cluster"/,
  ],
  [
    'an unknown retry condition',
    { rules: [{ backends: [backend], retry: { retryOn: ['sometimes'] } }] },
    /spec\.rules\[0\]\.retry\.retryOn\[0\]: Unsupported value: "sometimes"/,
  ],
];

describe('GatewayRoute CRD on kube-apiserver', () => {
  it('accepts every example manifest (kubectl apply)', async () => {
    const dir = `${REPO_ROOT}/examples/routes`;
    const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) {
      const text = readFileSync(`${dir}/${f}`, 'utf8');
      for (const m of text.matchAll(/namespace: ([a-z0-9-]+)/g)) await ensureNamespace(kube, m[1]!);
      const r = await kube.kubectl(['apply', '-f', `${dir}/${f}`]);
      expect(r.stdout, f).toMatch(/gatewayroute\.edgegate\.io\/\S+ (created|configured|unchanged)/);
    }
    const names = await kube.kubectl(['get', 'gr', '-A', '-o', 'name']);
    expect(names.stdout).toContain('gatewayroute.edgegate.io/billing');
    expect(names.stdout).toContain('gatewayroute.edgegate.io/edge-catalog');
  });

  it.each(bad)('rejects %s, naming the field', async (what, spec, message) => {
    const name = `bad-${rand()}`;
    const r = await kube.kubectl(['apply', '-f', '-'], {
      input: routeYaml(ns, name, spec),
      allowFailure: true,
    });
    expect(r.code, `${what} was accepted`).not.toBe(0);
    expect(r.stderr).toMatch(message);
    const gone = await kube.kubectl(['get', 'gr', name, '-n', ns, '--ignore-not-found', '-o', 'name']);
    expect(gone.stdout.trim()).toBe('');
  });

  it('applies a valid route using every kind of filter and match, and lists it by short name', async () => {
    const spec = {
      hostnames: ['all.example.com', '*.all.example.com'],
      rules: [
        {
          name: 'everything',
          matches: [
            {
              path: { type: 'RegularExpression', value: '^/v[0-9]+/.*$' },
              headers: [
                { name: 'x-a', value: '1' },
                { type: 'RegularExpression', name: 'x-b', value: '^b+$' },
              ],
              queryParams: [{ name: 'q', value: 'v' }],
              method: 'GET',
            },
          ],
          filters: [
            {
              type: 'RequestHeaderModifier',
              requestHeaderModifier: { set: [{ name: 'x-s', value: 's' }], remove: ['x-r'] },
            },
            {
              type: 'ResponseHeaderModifier',
              responseHeaderModifier: { add: [{ name: 'x-o', value: 'o' }] },
            },
            {
              type: 'URLRewrite',
              urlRewrite: {
                hostname: 'up.example.com',
                path: { type: 'ReplaceFullPath', replaceFullPath: '/x' },
              },
            },
            {
              type: 'CORS',
              cors: {
                allowOrigins: ['https://*.example.com', 'http://localhost:3000'],
                allowMethods: ['GET', 'PUT'],
                allowHeaders: ['content-type'],
                exposeHeaders: ['x-total'],
                allowCredentials: true,
                maxAge: 600,
              },
            },
            {
              type: 'RequestMirror',
              requestMirror: { backendRef: { service: { name: 'shadow', port: 80 } }, percent: 10 },
            },
            {
              type: 'RequestMirror',
              requestMirror: {
                backendRef: { consul: { service: 'audit' } },
                fraction: { numerator: 1, denominator: 1000 },
                maxBodySize: 1024,
              },
            },
            {
              type: 'ResponseCompression',
              responseCompression: {
                algorithms: ['br', 'gzip'],
                minSize: 256,
                contentTypes: ['text/*'],
                gzipLevel: 6,
              },
            },
          ],
          backends: [
            {
              service: { name: 'web', port: 'http' },
              weight: 3,
              pool: { maxConnections: 8, keepAliveTimeout: '4s', maxPendingRequests: 64 },
            },
            {
              consul: { service: 'billing', datacenter: 'dc2', tags: ['v1'], passingOnly: false },
              weight: 0,
            },
          ],
          loadBalancer: { type: 'ConsistentHash', consistentHash: { cookie: 'session' } },
          timeouts: { request: '10s', backendRequest: '2s', responseHeaders: '1s', idle: '30s' },
          retry: { attempts: 2, retryOn: ['connect-failure', 'reset', '503'], backoff: '25ms' },
        },
        {
          matches: [{ path: { type: 'Exact', value: '/old' } }],
          filters: [
            { type: 'RequestRedirect', requestRedirect: { scheme: 'https', port: 8443, statusCode: 308 } },
          ],
        },
      ],
    };
    await apply(kube, routeYaml(ns, 'full', spec));
    const got = await kube.kubectl(['get', 'gr', '-n', ns, 'full']);
    expect(got.stdout).toMatch(/NAME\s+HOSTNAMES\s+ACCEPTED\s+PROGRAMMED\s+AGE/);
    expect(got.stdout).toContain('all.example.com');
  });
});
