/**
 * The service catalog: datacenters → services → instances. The standalone catalog file is written in this
 * shape, and the Consul source fills the same model, so compile/ sees one kind of input whatever the source.
 */
import { type Static, Type } from '@sinclair/typebox';

export const HEALTH = ['passing', 'warning', 'critical'] as const;
export type Health = (typeof HEALTH)[number];

export const CatalogInstance = Type.Object(
  {
    id: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    address: Type.String({ minLength: 1, maxLength: 253 }),
    port: Type.Integer({ minimum: 1, maximum: 65535 }),
    tags: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 256 }), { description: 'default []' }),
    ),
    meta: Type.Optional(Type.Record(Type.String(), Type.String())),
    health: Type.Optional(
      Type.Union(
        HEALTH.map((h) => Type.Literal(h)),
        { description: 'default passing' },
      ),
    ),
    weight: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: 'default 1' })),
  },
  { additionalProperties: false },
);

export const CatalogFile = Type.Object(
  {
    datacenters: Type.Record(
      Type.String({ minLength: 1, maxLength: 128 }),
      Type.Object(
        {
          services: Type.Optional(
            Type.Record(Type.String({ minLength: 1, maxLength: 256 }), Type.Array(CatalogInstance)),
          ),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

export type CatalogInstance = Static<typeof CatalogInstance>;
export type CatalogFile = Static<typeof CatalogFile>;

/** One service instance as the compiler sees it: every field filled in. */
export interface Instance {
  id: string;
  address: string;
  port: number;
  tags: string[];
  meta: Record<string, string>;
  health: Health;
  weight: number;
}

/**
 * What the catalog sources know: for each datacenter, its services and their instances. Plain data (it crosses
 * process boundaries and is hashed); `datacenters` lists every datacenter known, even one with no services.
 */
export interface CatalogSnapshot {
  /** The local datacenter: where a consul backend without `datacenter` goes. */
  localDatacenter: string;
  datacenters: Record<string, { services: Record<string, Instance[]> }>;
  /** Services exported to this cluster by cluster peers (`?peer=`), by peer name; absent: none watched. */
  peers?: Record<string, { services: Record<string, Instance[]> }>;
  /** Consul service mesh (Connect) facts; absent: mesh is off (no gateway service identity configured). */
  mesh?: MeshCatalog;
  /**
   * Datacenters whose data is stale right now, and why (the Consul source; absent: every datacenter is current).
   * It changes only when a datacenter becomes stale or current again, never with the age itself.
   */
  freshness?: Record<string, DatacenterFreshness>;
}

/** What the Consul source knows of the service mesh: mesh addresses and intention decisions. */
export interface MeshCatalog {
  /** The gateway's own Consul service name: the source of every intention check. */
  gatewayService: string;
  /** Consul namespace of the SPIFFE identities (`default` without Enterprise namespaces). */
  namespace: string;
  /** Mesh addresses (sidecar proxy or Connect-native instance, `/v1/health/connect`), by `datacenter/service`. */
  services: Record<string, Instance[]>;
  /** The agent's answer to "may the gateway connect to this service?", by destination service. */
  intentions: Record<string, { allowed: boolean; reason: string }>;
}

/** Why a datacenter's catalog data is stale: no contact, or older than the staleness limit. */
export type StaleReason = 'SourceDown' | 'Lagging';

export interface DatacenterFreshness {
  reason: StaleReason;
  /** When the data became stale (ms since the epoch). */
  since: number;
}

/** Endpoints of Kubernetes Services, from EndpointSlices: key `namespace/name`. Only ready endpoints. */
export interface KubeServiceSnapshot {
  services: Record<string, KubeService>;
}

export interface KubeService {
  /** Service ports: name → port on the Service and the target port on the endpoints. */
  ports: { name: string; port: number; targetPort: number }[];
  endpoints: { address: string; ports: Record<string, number>; ready: boolean }[];
}

export function emptyCatalog(localDatacenter = 'dc1'): CatalogSnapshot {
  return { localDatacenter, datacenters: {} };
}

export function emptyKube(): KubeServiceSnapshot {
  return { services: {} };
}
