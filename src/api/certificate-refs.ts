/**
 * What the gateway knows of the Secrets that GatewayRoutes name in `spec.tls[].secretName`: one entry per Secret
 * (`namespace/name`) once its watch has synced. Compile reads it to report a missing or invalid Secret in the
 * route's ResolvedRefs condition; the certificates themselves never enter compile or the table.
 */
import type { GatewayRoute } from './gateway-route.ts';

export interface CertificateRefSnapshot {
  /** Key `namespace/name`. A Secret without an entry is not known yet (its watch is starting): no verdict. */
  secrets: Record<string, CertificateRefState>;
}

export interface CertificateRefState {
  ok: boolean;
  /** Not ok: `NotFound`, `WrongType`, `MissingKey`, `InvalidCertificate`, `InvalidKey`, `KeyMismatch`, `Expired`… */
  reason?: string;
  message?: string;
  /** Not ok, and the hostnames still get the last good certificate of this Secret. */
  servingPrevious?: boolean;
}

/** The Secret names a route's backends present as client certificates (`tls.clientCertificateRef`), in order. */
export function clientCertificateNames(route: GatewayRoute): string[] {
  return (route.spec.rules ?? []).flatMap((r) =>
    (r.backends ?? []).flatMap((b) => (b.tls?.clientCertificateRef ? [b.tls.clientCertificateRef.name] : [])),
  );
}

const PREFIX = 'Secret ';

/** The `unresolved` line for a Secret that cannot be served (names the Secret). */
export function certificateRefProblem(key: string, state: CertificateRefState): string {
  const kept = state.servingPrevious ? '; the previous certificate is still served' : '';
  return `${PREFIX}${key}: ${state.message ?? state.reason ?? 'invalid'}${kept}`;
}

/** An `unresolved` line written by certificateRefProblem (status reason InvalidCertificateRef). */
export function isCertificateRefProblem(line: string): boolean {
  return line.startsWith(PREFIX);
}
