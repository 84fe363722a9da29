import { describe, expect, it } from 'vitest';
import { formatPath, validateRoute } from '../../../src/api/validate.ts';

const base = (spec: unknown) => ({
  apiVersion: 'edgegate.io/v1alpha1',
  kind: 'GatewayRoute',
  metadata: { name: 'r', namespace: 'ns' },
  spec,
});

function errorsOf(raw: unknown): string[] {
  const r = validateRoute(raw);
  return r.ok ? [] : r.errors.map((e) => `${formatPath(e.path)}: ${e.message}`);
}

describe('validateRoute', () => {
  it('accepts a full route and fills defaults', () => {
    const r = validateRoute(
      base({
        hostnames: ['api.example.com', '*.example.com'],
        rules: [
          {
            matches: [{ path: { value: '/billing' }, headers: [{ name: 'x-canary', value: '1' }] }],
            backends: [{ consul: { service: 'billing', tags: ['v2'] } }],
          },
        ],
      }),
    );
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const rule = r.route.spec.rules![0]!;
    expect(rule.matches![0]!.path!.type).toBe('PathPrefix');
    expect(rule.matches![0]!.headers![0]!.type).toBe('Exact');
    expect(rule.backends![0]!.weight).toBe(1);
    expect(rule.backends![0]!.consul!.passingOnly).toBe(true);
  });

  it('names the field of an unknown field, a bad enum and an out-of-range weight', () => {
    const errs = errorsOf(
      base({
        bogus: 1,
        rules: [
          {
            matches: [{ path: { type: 'Regex', value: '/' } }],
            backends: [{ consul: { service: 's' }, weight: 2000000 }],
          },
        ],
      }),
    );
    expect(errs).toContain('spec.bogus: unknown field');
    expect(errs.some((e) => e.startsWith('spec.rules[0].matches[0].path.type: must be one of "Exact"'))).toBe(
      true,
    );
    expect(errs).toContain('spec.rules[0].backends[0].weight: 2000000 is out of range 0..1000000');
  });

  it('rejects a regex that does not compile, naming the field', () => {
    const errs = errorsOf(
      base({
        rules: [
          {
            matches: [{}, { path: { type: 'RegularExpression', value: '/a(' } }],
            backends: [{ consul: { service: 's' } }],
          },
        ],
      }),
    );
    expect(errs).toHaveLength(1);
    expect(errs[0]).toMatch(/^spec\.rules\[0\]\.matches\[1\]\.path\.value: invalid regular expression/);
  });

  it('rejects duplicate hostnames, missing backends, both backend kinds and zero total weight', () => {
    const errs = errorsOf(
      base({
        hostnames: ['a.example.com', 'a.example.com'],
        rules: [
          { matches: [{ path: { value: '/x' } }] },
          { backends: [{ consul: { service: 's' }, service: { name: 's', port: 80 } }] },
          { backends: [{ consul: { service: 's' }, weight: 0 }] },
        ],
      }),
    );
    expect(errs).toEqual([
      'spec.hostnames[1]: duplicate hostname a.example.com (also at hostnames[0])',
      'spec.rules[0].backends: at least one backend is required',
      'spec.rules[1].backends[0]: exactly one of consul or service must be set',
      'spec.rules[2].backends: the weights of a rule must sum above zero',
    ]);
  });

  it('refuses CR/LF in header values from route config (header injection)', () => {
    const errs = errorsOf(
      base({
        rules: [
          {
            filters: [
              {
                type: 'RequestHeaderModifier',
                requestHeaderModifier: { set: [{ name: 'x-a', value: 'ok\r\nx-evil: 1' }] },
              },
            ],
            backends: [{ consul: { service: 's' } }],
          },
        ],
      }),
    );
    expect(errs).toHaveLength(1);
    expect(errs[0]).toMatch(
      /^spec\.rules\[0\]\.filters\[0\]\.requestHeaderModifier\.set\[0\]\.value: .*CR, LF/,
    );
  });

  it('checks filter shapes: field for type, redirect without backends, ReplacePrefixMatch needs prefixes', () => {
    const errs = errorsOf(
      base({
        rules: [
          { filters: [{ type: 'URLRewrite' }], backends: [{ consul: { service: 's' } }] },
          {
            filters: [{ type: 'RequestRedirect', requestRedirect: { scheme: 'https' } }],
            backends: [{ consul: { service: 's' } }],
          },
          {
            matches: [{ path: { type: 'Exact', value: '/a' } }],
            filters: [
              {
                type: 'URLRewrite',
                urlRewrite: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/' } },
              },
            ],
            backends: [{ consul: { service: 's' } }],
          },
        ],
      }),
    );
    expect(errs).toEqual([
      'spec.rules[0].filters[0].urlRewrite: filter of type URLRewrite needs urlRewrite',
      'spec.rules[1].backends: a rule with a RequestRedirect filter has no backends',
      'spec.rules[2].matches[0].path.type: ReplacePrefixMatch needs every match of the rule to be a PathPrefix match',
    ]);
  });

  it('requires rules or catalog, not both', () => {
    expect(errorsOf(base({}))).toEqual(['spec: a route needs rules or catalog']);
    expect(errorsOf(base({ rules: [], catalog: {} }))).toEqual([
      'spec.catalog: a route has either rules or catalog, not both',
    ]);
  });

  it('rejects un-normalized paths in matches', () => {
    const errs = errorsOf(
      base({
        rules: [{ matches: [{ path: { value: '/a/../b' } }], backends: [{ consul: { service: 's' } }] }],
      }),
    );
    expect(errs[0]).toMatch(/spec\.rules\[0\]\.matches\[0\]\.path\.value: .*normalized/);
  });
});

describe('header modifiers cannot edit what the gateway owns', () => {
  const rule = (filter: unknown) =>
    base({ rules: [{ filters: [filter], backends: [{ consul: { service: 's' } }] }] });

  it('refuses Host, the forwarded set, the request id, x-edgegate-*, hop-by-hop and content-length on requests', () => {
    const names = [
      'Host',
      'X-Forwarded-For',
      'x-request-id',
      'X-Edgegate-Attempt',
      'Transfer-Encoding',
      'Connection',
    ];
    const errs = errorsOf(
      rule({
        type: 'RequestHeaderModifier',
        requestHeaderModifier: {
          set: names.map((name) => ({ name, value: 'x' })),
          add: [{ name: 'Upgrade', value: 'h2c' }],
          remove: ['content-length', 'x-ok'],
        },
      }),
    );
    expect(errs).toHaveLength(names.length + 2);
    expect(errs[0]).toBe(
      'spec.rules[0].filters[0].requestHeaderModifier.set[0].name: header "Host" cannot be edited by a route: set by the gateway (use urlRewrite.hostname to change the Host an upstream sees)',
    );
    expect(errs).toContain(
      'spec.rules[0].filters[0].requestHeaderModifier.add[0].name: header "Upgrade" cannot be edited by a route: a hop-by-hop header',
    );
    expect(errs).toContain(
      'spec.rules[0].filters[0].requestHeaderModifier.remove[0]: header "content-length" cannot be edited by a route: the gateway frames the request',
    );
  });

  it('refuses hop-by-hop and content-length on responses, and allows the rest', () => {
    expect(
      errorsOf(
        rule({
          type: 'ResponseHeaderModifier',
          responseHeaderModifier: {
            set: [
              { name: 'transfer-encoding', value: 'chunked' },
              { name: 'x-a', value: '1' },
            ],
          },
        }),
      ),
    ).toEqual([
      'spec.rules[0].filters[0].responseHeaderModifier.set[0].name: header "transfer-encoding" cannot be edited by a route: a hop-by-hop header',
    ]);
    expect(
      errorsOf(
        rule({
          type: 'ResponseHeaderModifier',
          responseHeaderModifier: { set: [{ name: 'x-request-id', value: '1' }] },
        }),
      ),
    ).toEqual([]);
  });
});
