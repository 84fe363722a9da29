/**
 * compileDefaults(schema) must give exactly what TypeBox's Value.Default gives: checked on GatewayRoute-shaped
 * values generated from the schema itself (every field optional, any node sometimes replaced by arbitrary JSON),
 * on the catalog file schema, and on the schema kinds that take the fallback path.
 */
import { Kind, type TSchema, Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CatalogFile } from '../../../src/api/catalog.ts';
import { compileDefaults } from '../../../src/api/defaults.ts';
import { GatewayRoute } from '../../../src/api/gateway-route.ts';

type Schema = TSchema & Record<string | symbol, unknown>;

/** Values shaped by the schema, with missing fields (where defaults apply) and wrong types mixed in. */
function arbitraryFor(schema: TSchema, depth = 0): fc.Arbitrary<unknown> {
  const s = schema as Schema;
  const wrong = fc.oneof(
    fc.constant(undefined),
    fc.constant(null),
    fc.integer(),
    fc.string(),
    fc.jsonValue({ maxDepth: 1 }),
  );
  let shaped: fc.Arbitrary<unknown>;
  switch (s[Kind]) {
    case 'Object': {
      const props = s.properties as Record<string, TSchema>;
      shaped = fc.record(
        Object.fromEntries(Object.entries(props).map(([k, p]) => [k, arbitraryFor(p, depth + 1)])),
        { requiredKeys: [] },
      );
      break;
    }
    case 'Array':
      shaped = fc.array(arbitraryFor(s.items as TSchema, depth + 1), { maxLength: depth > 6 ? 0 : 3 });
      break;
    case 'Union':
      shaped = fc.oneof(...(s.anyOf as TSchema[]).map((o) => arbitraryFor(o, depth + 1)));
      break;
    case 'Record':
      shaped = fc.dictionary(
        fc.string({ maxLength: 4 }),
        arbitraryFor(Object.values(s.patternProperties as object)[0], depth + 1),
        { maxKeys: 2 },
      );
      break;
    case 'Literal':
      shaped = fc.constant(s.const);
      break;
    case 'String':
      shaped = fc.string({ maxLength: 6 });
      break;
    case 'Integer':
    case 'Number':
      shaped = fc.integer({ min: -1, max: 70000 });
      break;
    case 'Boolean':
      shaped = fc.boolean();
      break;
    default:
      shaped = fc.jsonValue({ maxDepth: 1 });
  }
  return fc.oneof({ weight: 8, arbitrary: shaped }, { weight: 1, arbitrary: wrong });
}

function same(schema: TSchema, value: unknown) {
  const fill = compileDefaults(schema);
  expect(fill(structuredClone(value))).toEqual(Value.Default(schema, structuredClone(value)));
}

describe('compileDefaults', () => {
  it('equals Value.Default on generated GatewayRoute values', () => {
    fc.assert(
      fc.property(arbitraryFor(GatewayRoute), (v) => same(GatewayRoute, v)),
      { numRuns: 1500 },
    );
  });

  it('equals Value.Default on generated catalog files (Record: fallback path)', () => {
    fc.assert(
      fc.property(arbitraryFor(CatalogFile), (v) => same(CatalogFile, v)),
      { numRuns: 300 },
    );
  });

  it('fills a nested default, a defaulted array as a fresh copy each time, and keeps given values', () => {
    const schema = Type.Object({
      a: Type.Optional(
        Type.Array(Type.Object({ t: Type.Optional(Type.String({ default: 'x' })) }), { default: [] }),
      ),
      u: Type.Optional(Type.Union([Type.Literal('A'), Type.Literal('B')], { default: 'A' })),
      n: Type.Optional(Type.Integer({ default: 1 })),
    });
    const fill = compileDefaults(schema);
    const one = fill({}) as { a: unknown[] };
    const two = fill({}) as { a: unknown[] };
    expect(one).toEqual({ a: [], u: 'A', n: 1 });
    expect(one.a).not.toBe(two.a);
    expect(fill({ a: [{}, { t: 'y' }], u: 'B', n: 5 })).toEqual({
      a: [{ t: 'x' }, { t: 'y' }],
      u: 'B',
      n: 5,
    });
  });

  it('takes the exact path for unions of objects and for object defaults', () => {
    const schema = Type.Object({
      o: Type.Optional(
        Type.Union([Type.Object({ k: Type.Optional(Type.Number({ default: 2 })) }), Type.String()]),
      ),
      p: Type.Optional(Type.Object({ q: Type.Optional(Type.Number()) }, { default: { q: 3, r: 4 } })),
    });
    for (const v of [{}, { o: {} }, { o: 'x' }, { p: { q: 9 } }, { p: 1 }]) same(schema, v);
  });
});
