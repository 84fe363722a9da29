/**
 * The GatewayRoute CustomResourceDefinition, derived from the one schema (gateway-route.ts, gateway-route-status.ts).
 * `npm run gen:crd` writes it to crds/; a test fails when the committed file differs.
 *
 * TypeBox emits JSON Schema; a CRD needs a *structural* schema. The conversion is generic (new fields need no
 * edits here) and refuses what a structural schema cannot hold, naming the field:
 * - `additionalProperties: false` is dropped: the API server prunes unknown fields, and kubectl's strict field
 *   validation rejects them by name;
 * - a union of literals becomes `enum` with the literal's type; `const` becomes a one-value `enum`;
 * - the int-or-string union keeps `x-kubernetes-int-or-string` with bare `{type}` branches; the branches' bounds
 *   move up to the field (a structural schema allows only `type` inside them; minimum applies to numbers only,
 *   maxLength to strings only);
 * - `Type.Record` (patternProperties) becomes `additionalProperties: <schema>`;
 * - descriptions, defaults, bounds, patterns, `x-kubernetes-*` (CEL rules, list types) pass through.
 */
import { stringify } from 'yaml';
import { API_GROUP, API_VERSION, GatewayRoute, KIND } from './gateway-route.ts';
import { GatewayRouteStatus } from './gateway-route-status.ts';

export const CRD_PLURAL = 'gatewayroutes';
export const CRD_NAME = `${CRD_PLURAL}.${API_GROUP}`;
export const CRD_SHORT_NAMES = ['gr'];

type Json = Record<string, unknown>;

const PASS = new Set([
  'type',
  'description',
  'default',
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'exclusiveMaximum',
  'multipleOf',
  'minLength',
  'maxLength',
  'pattern',
  'format',
  'minItems',
  'maxItems',
  'uniqueItems',
  'minProperties',
  'maxProperties',
  'enum',
  'required',
  'nullable',
  'title',
  'example',
]);
const DROP = new Set(['$id', '$schema', 'additionalProperties', 'examples']);

export class CrdSchemaError extends Error {}

function where(path: string[]): string {
  return path.length === 0 ? '(root)' : path.join('.');
}

function literalType(value: unknown, path: string[]): string {
  if (typeof value === 'string') return 'string';
  if (typeof value === 'boolean') return 'boolean';
  if (Number.isInteger(value)) return 'integer';
  if (typeof value === 'number') return 'number';
  throw new CrdSchemaError(`${where(path)}: literal ${JSON.stringify(value)} has no structural type`);
}

/** One TypeBox/JSON Schema node → a structural-schema node. */
export function toStructural(node: Json, path: string[] = []): Json {
  const out: Json = {};
  for (const [key, value] of Object.entries(node)) {
    if (DROP.has(key)) continue;
    if (key.startsWith('x-kubernetes-') || PASS.has(key)) out[key] = structuredClone(value);
    else if (key === 'properties') {
      const props: Json = {};
      for (const [name, child] of Object.entries(value as Json))
        props[name] = toStructural(child as Json, [...path, name]);
      out.properties = props;
    } else if (key === 'items') out.items = toStructural(value as Json, [...path, '[]']);
    else if (key === 'patternProperties') {
      const schemas = Object.values(value as Json);
      if (schemas.length !== 1)
        throw new CrdSchemaError(`${where(path)}: a map needs exactly one value schema`);
      out.type = 'object';
      out.additionalProperties = toStructural(schemas[0] as Json, [...path, '*']);
    } else if (key === 'const') {
      out.type = literalType(value, path);
      out.enum = [value];
    } else if (key !== 'anyOf') {
      throw new CrdSchemaError(`${where(path)}: JSON Schema keyword "${key}" has no CRD equivalent`);
    }
  }
  if (Array.isArray(node.anyOf)) Object.assign(out, unionOf(node, node.anyOf as Json[], path));
  // `additionalProperties: true` (an open object such as metadata) keeps unknown fields.
  if (node.additionalProperties === true && !('properties' in node))
    out['x-kubernetes-preserve-unknown-fields'] = true;
  if (node.additionalProperties !== undefined && typeof node.additionalProperties === 'object')
    out.additionalProperties = toStructural(node.additionalProperties as Json, [...path, '*']);
  if (Object.keys(node).length === 0) out['x-kubernetes-preserve-unknown-fields'] = true;
  return out;
}

function unionOf(node: Json, options: Json[], path: string[]): Json {
  if (options.every((o) => 'const' in o)) {
    const types = new Set(options.map((o) => literalType(o.const, path)));
    if (types.size !== 1) throw new CrdSchemaError(`${where(path)}: an enum must have one type`);
    return { type: [...types][0], enum: options.map((o) => o.const) };
  }
  if (node['x-kubernetes-int-or-string'] === true) {
    const types = options.map((o) => o.type).sort();
    if (types.join() !== 'integer,string')
      throw new CrdSchemaError(`${where(path)}: int-or-string needs one integer and one string branch`);
    // Bounds of both branches move up: minimum/maximum only apply to numbers, minLength/maxLength to strings.
    const bounds: Json = {};
    for (const o of options)
      for (const k of ['minimum', 'maximum', 'minLength', 'maxLength', 'pattern'])
        if (o[k] !== undefined) bounds[k] = o[k];
    return { ...bounds, anyOf: [{ type: 'integer' }, { type: 'string' }] };
  }
  throw new CrdSchemaError(
    `${where(path)}: a structural schema allows no unions (except int-or-string); use optional siblings`,
  );
}

/** The openAPIV3Schema of GatewayRoute v1alpha1. */
export function gatewayRouteSchema(): Json {
  const source = JSON.parse(JSON.stringify(GatewayRoute)) as Json;
  const props = source.properties as Json;
  const spec = toStructural(props.spec as Json, ['spec']);
  const statusSource = JSON.parse(JSON.stringify(GatewayRouteStatus)) as Json;
  const status = toStructural(statusSource, ['status']);
  return {
    type: 'object',
    description: `${KIND}: hostnames, matches, filters and weighted backends (Consul services or Kubernetes Services) served by edgegate.`,
    required: ['spec'],
    properties: {
      apiVersion: { type: 'string' },
      kind: { type: 'string' },
      // A CRD may constrain only metadata.name/generateName; the API server validates the rest.
      metadata: { type: 'object' },
      spec,
      status,
    },
  };
}

const condition = (type: string) => `.status.conditions[?(@.type=="${type}")].status`;

/** The whole CustomResourceDefinition object. */
export function gatewayRouteCrd(): Json {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: CRD_NAME,
      annotations: { 'edgegate.io/generated-by': 'npm run gen:crd (scripts/gen-crd.ts)' },
    },
    spec: {
      group: API_GROUP,
      scope: 'Namespaced',
      names: {
        plural: CRD_PLURAL,
        singular: KIND.toLowerCase(),
        kind: KIND,
        listKind: `${KIND}List`,
        shortNames: CRD_SHORT_NAMES,
        categories: ['edgegate'],
      },
      versions: [
        {
          name: API_VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            { name: 'Hostnames', type: 'string', jsonPath: '.spec.hostnames' },
            { name: 'Accepted', type: 'string', jsonPath: condition('Accepted') },
            { name: 'Programmed', type: 'string', jsonPath: condition('Programmed') },
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
          ],
          schema: { openAPIV3Schema: gatewayRouteSchema() },
        },
      ],
    },
  };
}

export function gatewayRouteCrdYaml(): string {
  return (
    '# GENERATED by `npm run gen:crd` from src/api/gateway-route.ts — do not edit.\n' +
    stringify(gatewayRouteCrd(), { lineWidth: 0 })
  );
}
