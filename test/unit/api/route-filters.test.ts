/** Validation of the CORS, RequestMirror and ResponseCompression filters: every error names its field. */
import { describe, expect, it } from 'vitest';
import { formatPath, validateRoute } from '../../../src/api/validate.ts';
import { compile } from '../../../src/compile/compile.ts';

const backend = { consul: { service: 'app' } };
const route = (filters: unknown[], extra: Record<string, unknown> = {}) => ({
  apiVersion: 'edgegate.io/v1alpha1',
  kind: 'GatewayRoute',
  metadata: { name: 'r', namespace: 'ns' },
  spec: { rules: [{ filters, backends: [backend], ...extra }] },
});

function errorsOf(raw: unknown): string[] {
  const r = validateRoute(raw);
  return r.ok ? [] : r.errors.map((e) => `${formatPath(e.path)}: ${e.message}`);
}

const cors = (c: Record<string, unknown>) => ({ type: 'CORS', cors: c });
const mirror = (m: Record<string, unknown>) => ({
  type: 'RequestMirror',
  requestMirror: { backendRef: backend, ...m },
});
const compression = (c: Record<string, unknown>) => ({ type: 'ResponseCompression', responseCompression: c });

describe('CORS filter validation', () => {
  it('accepts Gateway API origins: *, exact, wildcard hosts, ports, IPv6 literals', () => {
    expect(
      errorsOf(
        route([
          cors({
            allowOrigins: [
              'https://a.example.com',
              'https://*.example.org',
              'http://localhost:3000',
              'https://*',
              'http://[::1]:8080',
              'https://UPPER.example',
            ],
            allowMethods: ['GET', 'PATCH'],
            allowHeaders: ['x-a', 'Content-Type'],
            exposeHeaders: ['*'],
            maxAge: 86400,
          }),
        ]),
      ),
    ).toEqual([]);
    expect(
      errorsOf(route([cors({ allowOrigins: ['*'], allowMethods: ['*'], allowHeaders: ['*'] })])),
    ).toEqual([]);
  });

  it.each([
    ['ftp://a.example', 'allowOrigins[0]'],
    ['https://a.example/path', 'allowOrigins[0]'],
    ['https://a.*.example', 'allowOrigins[0]'],
    ['https://*example.com', 'allowOrigins[0]'],
    ['a.example.com', 'allowOrigins[0]'],
    ['https://a.example.com\r\nx: y', 'allowOrigins[0]'],
    ['null', 'allowOrigins[0]'],
    ['https://a.example:0', 'allowOrigins[0]'],
    ['https://a.example:70000', 'allowOrigins[0]'],
  ])('refuses the origin %j, naming %s', (origin, field) => {
    const errs = errorsOf(route([cors({ allowOrigins: [origin] })]));
    expect(errs.length).toBeGreaterThan(0);
    expect(errs[0]).toMatch(
      new RegExp(`^spec\\.rules\\[0\\]\\.filters\\[0\\]\\.cors\\.${field.replace(/[[\]]/g, '\\$&')}: `),
    );
  });

  it('refuses * alongside other values, duplicates, bad methods, headers and max age, naming the field', () => {
    const errs = errorsOf(
      route([
        cors({
          allowOrigins: ['*', 'https://a.example'],
          allowMethods: ['GET', '*'],
          allowHeaders: ['x-a', 'X-A'],
          exposeHeaders: ['bad header'],
          maxAge: 0,
        }),
      ]),
    );
    expect(errs).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^spec\.rules\[0\]\.filters\[0\]\.cors\.exposeHeaders\[0\]: invalid value/),
        expect.stringMatching(
          /^spec\.rules\[0\]\.filters\[0\]\.cors\.maxAge: 0 is out of range 1\.\.2147483647/,
        ),
      ]),
    );
    const semantic = errorsOf(
      route([
        cors({
          allowOrigins: ['*', 'https://a.example'],
          allowMethods: ['GET', '*'],
          allowHeaders: ['x-a', 'X-A'],
        }),
      ]),
    );
    expect(semantic).toEqual([
      'spec.rules[0].filters[0].cors.allowOrigins: "*" cannot be listed alongside other values',
      'spec.rules[0].filters[0].cors.allowMethods: "*" cannot be listed alongside other values',
      'spec.rules[0].filters[0].cors.allowHeaders[1]: duplicate value "X-A"',
    ]);
    expect(errorsOf(route([cors({ allowMethods: ['get'] })]))[0]).toMatch(
      /^spec\.rules\[0\]\.filters\[0\]\.cors\.allowMethods\[0\]: must be one of "GET"/,
    );
  });

  it('refuses a filter without its field, a second CORS filter and CORS on a redirect rule', () => {
    expect(errorsOf(route([{ type: 'CORS' }]))).toEqual([
      'spec.rules[0].filters[0].cors: filter of type CORS needs cors',
    ]);
    expect(errorsOf(route([cors({}), cors({})]))).toEqual([
      'spec.rules[0].filters[1].type: CORS may appear once per rule',
    ]);
    const redirect = {
      ...route([{ type: 'RequestRedirect', requestRedirect: {} }, cors({ allowOrigins: ['*'] })]),
    };
    redirect.spec.rules[0] = { filters: redirect.spec.rules[0]!.filters, backends: undefined as never };
    delete (redirect.spec.rules[0] as { backends?: unknown }).backends;
    expect(errorsOf(redirect)).toEqual([
      'spec.rules[0].filters: a RequestRedirect rule cannot have CORS, RequestMirror or ResponseCompression filters',
    ]);
  });
});

describe('RequestMirror filter validation', () => {
  it('accepts several mirrors with percent, fraction or neither', () => {
    expect(
      errorsOf(
        route([
          mirror({ percent: 10 }),
          mirror({ fraction: { numerator: 1, denominator: 1000 } }),
          mirror({ maxBodySize: 0 }),
        ]),
      ),
    ).toEqual([]);
  });

  it('names the field of each problem', () => {
    expect(errorsOf(route([mirror({ percent: 5, fraction: { numerator: 1 } })]))).toEqual([
      'spec.rules[0].filters[0].requestMirror.fraction: only one of percent or fraction may be set',
    ]);
    expect(errorsOf(route([mirror({ fraction: { numerator: 3, denominator: 2 } })]))).toEqual([
      'spec.rules[0].filters[0].requestMirror.fraction.numerator: numerator 3 must not exceed denominator 2',
    ]);
    expect(errorsOf(route([mirror({ percent: 101 })]))).toEqual([
      'spec.rules[0].filters[0].requestMirror.percent: 101 is out of range 0..100',
    ]);
    expect(errorsOf(route([mirror({ maxBodySize: 2_000_000 })]))[0]).toMatch(
      /requestMirror\.maxBodySize: 2000000 is out of range/,
    );
    expect(
      errorsOf(
        route([
          {
            type: 'RequestMirror',
            requestMirror: { backendRef: { ...backend, service: { name: 'a', port: 80 } } },
          },
        ]),
      ),
    ).toEqual([
      'spec.rules[0].filters[0].requestMirror.backendRef: exactly one of consul or service must be set',
    ]);
    expect(errorsOf(route([{ type: 'RequestMirror', requestMirror: { backendRef: {} } }]))).toEqual([
      'spec.rules[0].filters[0].requestMirror.backendRef: exactly one of consul or service must be set',
    ]);
  });

  it('compiles the share and reports an unknown mirror service as unresolved', () => {
    const { table, statuses } = compile({
      routes: [
        {
          raw: route([
            mirror({ fraction: { numerator: 1, denominator: 4 } }),
            { type: 'RequestMirror', requestMirror: { backendRef: { consul: { service: 'nowhere' } } } },
          ]),
          origin: 't',
        },
      ],
      catalog: { localDatacenter: 'dc1', datacenters: { dc1: { services: { app: [] } } } },
    });
    expect(table.entries[0]!.mirrors!.map((m) => [m.fraction, m.maxBodyBytes])).toEqual([
      [0.25, 65536],
      [1, 65536],
    ]);
    expect(statuses[0]!.unresolved).toEqual(['mirror: Consul service nowhere in datacenter dc1 not found']);
  });
});

describe('ResponseCompression filter validation', () => {
  it('accepts defaults and explicit settings', () => {
    expect(errorsOf(route([compression({})]))).toEqual([]);
    expect(
      errorsOf(
        route([
          compression({
            algorithms: ['gzip'],
            minSize: 0,
            contentTypes: ['text/event-stream', 'application/*+json'],
            brotliQuality: 11,
          }),
        ]),
      ),
    ).toEqual([]);
  });

  it('names the field of each problem', () => {
    expect(errorsOf(route([compression({ algorithms: ['deflate'] })]))[0]).toMatch(
      /^spec\.rules\[0\]\.filters\[0\]\.responseCompression\.algorithms\[0\]: must be one of "zstd", "br", "gzip"/,
    );
    expect(errorsOf(route([compression({ contentTypes: ['Text/HTML'] })]))[0]).toMatch(
      /^spec\.rules\[0\]\.filters\[0\]\.responseCompression\.contentTypes\[0\]: invalid value "Text\/HTML"/,
    );
    expect(errorsOf(route([compression({ contentTypes: ['*/*'] })]))[0]).toMatch(
      /contentTypes\[0\]: invalid value/,
    );
    expect(errorsOf(route([compression({ gzipLevel: 10 })]))).toEqual([
      'spec.rules[0].filters[0].responseCompression.gzipLevel: 10 is out of range 1..9',
    ]);
    expect(errorsOf(route([compression({ algorithms: ['gzip', 'gzip'] })]))[0]).toMatch(
      /algorithms\[1\]: duplicate value "gzip"/,
    );
  });
});
