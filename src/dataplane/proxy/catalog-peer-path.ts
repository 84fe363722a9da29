/**
 * The peer form of a catalog route's path: `{prefix}/peer/{peer}/{service}/{rest}` (docs/consul.md, "Cluster
 * peers"). Split without allocation beyond the three slices the router needs.
 */
export interface PeerPath {
  peer: string;
  service: string;
  /** The upstream path: `/rest…`, or `/` when nothing follows the service. */
  path: string;
}

/**
 * `rest` is the request path below the route prefix (it starts with `/peer`); `s1` the index of the `/` after
 * `peer` (-1: none). Undefined when the peer or the service segment is missing.
 */
export function parsePeerPath(rest: string, s1: number): PeerPath | undefined {
  if (s1 < 0) return undefined;
  const s2 = rest.indexOf('/', s1 + 1);
  if (s2 < 0) return undefined;
  const peer = rest.slice(s1 + 1, s2);
  const s3 = rest.indexOf('/', s2 + 1);
  const service = s3 < 0 ? rest.slice(s2 + 1) : rest.slice(s2 + 1, s3);
  if (peer === '' || service === '') return undefined;
  return { peer, service, path: s3 < 0 ? '/' : rest.slice(s3) };
}
