/**
 * Wiring for `edgegate run --consul`: the source follows the controller's routes (its watch set comes from
 * them) and reports catalog snapshots back to it. Kept here so run.ts only calls one function.
 */
import type { CatalogSnapshot } from '../../../api/catalog.ts';
import type { MeshIdentity } from '../../../api/certificate.ts';
import type { GatewayRoute } from '../../../api/gateway-route.ts';
import { type ConsulLog, ConsulSource } from './consul-source.ts';
import type { ConsulSettings } from './settings.ts';

/** The part of the Controller the source needs. */
export interface CatalogSink {
  setCatalog(catalog: CatalogSnapshot): void;
  onRoutes(listener: (routes: GatewayRoute[]) => void): void;
}

export function startConsulSource(
  controller: CatalogSink,
  settings: ConsulSettings,
  log: ConsulLog,
  onBlockingQuery?: (seconds: number) => void,
  /** The gateway's mesh identity (with `settings.meshService`): to the certificate set. */
  onMeshIdentity?: (identity: MeshIdentity) => void,
): ConsulSource {
  const source = new ConsulSource({
    settings,
    log,
    onSnapshot: (c) => controller.setCatalog(c),
    ...(onBlockingQuery ? { onBlockingQuery } : {}),
    ...(onMeshIdentity ? { onMeshIdentity } : {}),
  });
  source.start();
  controller.onRoutes((routes) => source.setRoutes(routes));
  log.info('consul source started', {
    address: settings.address,
    consistency: settings.consistency,
    namespace: settings.namespace,
    partition: settings.partition,
    token: settings.token ? 'set' : 'none',
    meshService: settings.meshService,
  });
  return source;
}
