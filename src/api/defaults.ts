/**
 * Default filling for a TypeBox schema, compiled once per schema: the same result as `Value.Default(schema, value)`
 * for the kinds the GatewayRoute schema uses (Object, Array, scalar Unions, scalars), without its per-call schema
 * walk. `Value.Default` visits every object property twice (once to test, once to assign), so its cost doubles
 * with each level of nesting: it was half of `compile` for 10,000 routes. Kinds this module does not specialise
 * (Record, Intersect, Ref, Tuple, unions with object or defaulted variants…) fall back to `Value.Default` for that
 * subtree, so the output never differs; test/unit/defaults.test.ts checks that against `Value.Default`.
 *
 * Like `Value.Default`, it mutates and returns the value: clone it first.
 */
import { Kind, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';

export type DefaultFiller = (value: unknown) => unknown;

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object';
const isArray = (v: unknown): v is unknown[] => Array.isArray(v) && !ArrayBuffer.isView(v);

/** Kinds Value.Default handles with a structure walk; everything else only gets its own default. */
const STRUCTURAL = new Set([
  'Array',
  'Date',
  'Import',
  'Intersect',
  'Object',
  'Record',
  'Ref',
  'This',
  'Tuple',
  'Union',
]);

type Schema = TSchema & Record<string | symbol, unknown>;

function valueOrDefault(schema: Schema): DefaultFiller {
  if (!('default' in schema)) return (v) => v;
  const d = schema.default;
  if (!isObject(d) && typeof d !== 'function') return (v) => (v === undefined ? d : v);
  return (v) => {
    const clone = typeof d === 'function' ? (d as () => unknown)() : Value.Clone(d);
    return v === undefined ? clone : isObject(v) && isObject(clone) ? Object.assign(clone, v) : v;
  };
}

function hasDefaultProperty(schema: unknown): boolean {
  return (
    isObject(schema) &&
    Kind in schema &&
    typeof schema[Kind as unknown as string] === 'string' &&
    'default' in schema
  );
}

function fallback(schema: Schema): DefaultFiller {
  return (v) => Value.Default(schema, v);
}

export function compileDefaults(schema: TSchema): DefaultFiller {
  const s = schema as Schema;
  const kind = s[Kind] as string;
  switch (kind) {
    case 'Object': {
      if (hasDefaultProperty(s.additionalProperties)) return fallback(s);
      const own = valueOrDefault(s);
      const props = Object.getOwnPropertyNames(s.properties).map(
        (key) => [key, compileDefaults((s.properties as Record<string, TSchema>)[key]!)] as const,
      );
      return (v) => {
        const d = own(v);
        if (!isObject(d)) return d;
        for (const [key, fill] of props) {
          const r = fill(d[key]);
          if (r !== undefined) d[key] = r;
        }
        return d;
      };
    }
    case 'Array': {
      const own = valueOrDefault(s);
      const item = compileDefaults(s.items as TSchema);
      return (v) => {
        const d = isArray(v) ? v : own(v);
        if (!isArray(d)) return d;
        for (let i = 0; i < d.length; i++) d[i] = item(d[i]);
        return d;
      };
    }
    case 'Union': {
      // Variants that are scalars without their own default leave the value as it is: the union's default is
      // all that applies. Anything richer takes the exact path.
      const simple = (s.anyOf as Schema[]).every(
        (o) => !STRUCTURAL.has(o[Kind] as string) && !('default' in o),
      );
      return simple ? valueOrDefault(s) : fallback(s);
    }
    default:
      return STRUCTURAL.has(kind) ? fallback(s) : valueOrDefault(s);
  }
}
