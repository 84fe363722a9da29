import { readFileSync } from 'node:fs';
import { Type } from '@sinclair/typebox';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CrdSchemaError, gatewayRouteCrd, gatewayRouteCrdYaml, toStructural } from '../../../src/api/crd.ts';

const committed = new URL('../../../crds/gatewayroutes.edgegate.io.yaml', import.meta.url);

function walk(node: unknown, visit: (n: Record<string, unknown>, path: string) => void, path = ''): void {
  if (!node || typeof node !== 'object') return;
  visit(node as Record<string, unknown>, path);
  for (const [k, v] of Object.entries(node)) walk(v, visit, `${path}/${k}`);
}

describe('GatewayRoute CRD', () => {
  it('the committed crds/gatewayroutes.edgegate.io.yaml is current (run npm run gen:crd)', () => {
    expect(readFileSync(committed, 'utf8')).toBe(gatewayRouteCrdYaml());
  });

  it('is a structural schema: no additionalProperties:false, no const, unions only as int-or-string', () => {
    // biome-ignore lint/suspicious/noExplicitAny: walking generated JSON
    const schema = (gatewayRouteCrd() as any).spec.versions[0].schema.openAPIV3Schema;
    walk(schema, (n, path) => {
      if ('properties' in n) expect(n.additionalProperties, path).toBeUndefined();
      expect(n.const, path).toBeUndefined();
      if ('anyOf' in n) expect(n['x-kubernetes-int-or-string'], path).toBe(true);
    });
    const port =
      schema.properties.spec.properties.rules.items.properties.backends.items.properties.service.properties
        .port;
    expect(port).toMatchObject({
      'x-kubernetes-int-or-string': true,
      minimum: 1,
      maximum: 65535,
      maxLength: 63,
      anyOf: [{ type: 'integer' }, { type: 'string' }],
    });
    expect(schema.properties.spec.properties.hostnames['x-kubernetes-list-type']).toBe('set');
    const method = schema.properties.spec.properties.rules.items.properties.matches.items.properties.method;
    expect(method.type).toBe('string');
    expect(method.enum).toContain('GET');
  });

  it('has the status subresource, short name gr and the printer columns', () => {
    // biome-ignore lint/suspicious/noExplicitAny: walking generated JSON
    const crd = gatewayRouteCrd() as any;
    expect(crd.metadata.name).toBe('gatewayroutes.edgegate.io');
    expect(crd.spec.names.shortNames).toEqual(['gr']);
    const v = crd.spec.versions[0];
    expect(v.subresources).toEqual({ status: {} });
    expect(v.additionalPrinterColumns.map((c: { name: string }) => c.name)).toEqual([
      'Hostnames',
      'Accepted',
      'Programmed',
      'Age',
    ]);
    expect(parse(gatewayRouteCrdYaml())).toEqual(crd);
  });

  it('refuses schema shapes a CRD cannot hold, naming the field', () => {
    const union = Type.Object({ a: Type.Union([Type.String(), Type.Number()]) });
    expect(() => toStructural(JSON.parse(JSON.stringify(union)))).toThrow(CrdSchemaError);
    expect(() => toStructural(JSON.parse(JSON.stringify(union)))).toThrow(/^a: /);
    const notKeyword = { type: 'object', properties: { b: { type: 'string', if: {} } } };
    expect(() => toStructural(notKeyword)).toThrow(/b: JSON Schema keyword "if"/);
  });

  it('converts a new field without edits to the generator (records, literals, open objects)', () => {
    const s = Type.Object(
      {
        labels: Type.Record(Type.String(), Type.String({ maxLength: 63 })),
        mode: Type.Literal('fast'),
        extra: Type.Unknown(),
      },
      { additionalProperties: false },
    );
    expect(toStructural(JSON.parse(JSON.stringify(s)))).toEqual({
      type: 'object',
      required: ['labels', 'mode', 'extra'],
      properties: {
        labels: { type: 'object', additionalProperties: { type: 'string', maxLength: 63 } },
        mode: { type: 'string', enum: ['fast'] },
        extra: { 'x-kubernetes-preserve-unknown-fields': true },
      },
    });
  });
});
