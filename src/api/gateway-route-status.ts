/**
 * The `.status` of a GatewayRoute, written by the leader (sources/kube/status-writer.ts). One schema for the
 * TypeScript type and the CRD's status subresource (scripts/gen-crd.ts).
 */
import { type Static, Type } from '@sinclair/typebox';

export const CONDITION_TYPES = [
  'Accepted',
  'ResolvedRefs',
  'Programmed',
  'Conflicted',
  'ServingStale',
] as const;
export type ConditionType = (typeof CONDITION_TYPES)[number];

export const Condition = Type.Object(
  {
    type: Type.String({
      maxLength: 316,
      description:
        'Accepted, ResolvedRefs, Programmed, Conflicted, or ServingStale (routes with Consul backends).',
    }),
    status: Type.Union([Type.Literal('True'), Type.Literal('False'), Type.Literal('Unknown')]),
    observedGeneration: Type.Optional(
      Type.Integer({ minimum: 0, description: 'metadata.generation this condition was computed from.' }),
    ),
    lastTransitionTime: Type.String({ format: 'date-time', description: 'When status last changed.' }),
    reason: Type.String({ maxLength: 1024, description: 'CamelCase reason, e.g. Invalid, BackendNotFound.' }),
    message: Type.String({ maxLength: 32768, description: 'What is wrong, naming the field or backend.' }),
  },
  { additionalProperties: false },
);

export const BackendHealth = Type.Object(
  {
    ref: Type.String({
      maxLength: 1024,
      description: 'The backend: consul:SERVICE@DC[tags], service:NAMESPACE/NAME:PORT or catalog:DC.',
    }),
    healthyEndpoints: Type.Record(Type.String({ maxLength: 128 }), Type.Integer({ minimum: 0 }), {
      description: 'Healthy endpoints per datacenter (kubernetes for Services).',
    }),
    servingDatacenter: Type.Optional(
      Type.String({
        maxLength: 128,
        description:
          'A backend with failover: the datacenter serving it by the catalog (the first of the primary and its fallbacks with a healthy endpoint).',
      }),
    ),
    servingSince: Type.Optional(
      Type.String({ format: 'date-time', description: 'When servingDatacenter last changed.' }),
    ),
    staleSince: Type.Optional(
      Type.Record(Type.String({ maxLength: 128 }), Type.String({ format: 'date-time' }), {
        description:
          'Datacenters of this backend whose catalog data is stale, and since when (its age is now minus this time); see the ServingStale condition.',
      }),
    ),
  },
  { additionalProperties: false },
);

export const GatewayRouteStatus = Type.Object(
  {
    observedGeneration: Type.Optional(Type.Integer({ minimum: 0 })),
    servedGeneration: Type.Optional(
      Type.Integer({
        minimum: 0,
        description:
          'metadata.generation of the version the gateway serves: observedGeneration while the route is valid, the last valid generation while an invalid update is refused (fail closed), absent when no version is valid.',
      }),
    ),
    conditions: Type.Optional(
      Type.Array(Condition, {
        maxItems: 8,
        'x-kubernetes-list-type': 'map',
        'x-kubernetes-list-map-keys': ['type'],
      }),
    ),
    backends: Type.Optional(
      Type.Array(BackendHealth, { maxItems: 1024, description: 'Healthy endpoint counts per backend.' }),
    ),
  },
  { additionalProperties: false, description: 'Written by the edgegate leader.' },
);

export type Condition = Static<typeof Condition>;
export type BackendHealth = Static<typeof BackendHealth>;
export type GatewayRouteStatus = Static<typeof GatewayRouteStatus>;
