/** Two sources' Service endpoint snapshots as one (the same Service in both is the same data: either wins). */
import type { KubeServiceSnapshot } from '../../../api/catalog.ts';

export function mergeKubeSnapshots(a: KubeServiceSnapshot, b: KubeServiceSnapshot): KubeServiceSnapshot {
  return { services: { ...b.services, ...a.services } };
}
