/**
 * What the gateway knows of the Secrets that GatewayRoutes name in `spec.tls[].secretName`: one entry per Secret
 * (`namespace/name`) once its watch has synced. Compile reads it to report a missing or invalid Secret in the
 * route's ResolvedRefs condition; the certificates themselves never enter compile or the table.
 */
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
