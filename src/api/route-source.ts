import type { FieldPath } from './validate.ts';

/** A route as a source reports it: the raw object (not yet validated) and where it came from. */
export interface RouteSource {
  raw: unknown;
  /** `file.yaml:12`, `kube`, … — for messages only; also the tie-break between two objects with one name. */
  origin: string;
  /** Line of a field in the source file, for error messages (files only). */
  locate?: (path: FieldPath) => number;
  /**
   * Backends may name a Service in another namespace (`service.namespace`): set only by the Gateway API source, for
   * backendRefs a ReferenceGrant allows. Any other route naming one is refused.
   */
  crossNamespaceBackends?: boolean;
  /** Serve the route only on these local addresses (its Gateways' own addresses); set only by the Gateway API source. */
  listenerAddresses?: string[];
}
