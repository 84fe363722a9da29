/**
 * The gateway's own error codes: stable strings users can alert on, each with the HTTP status it answers.
 * Every error the gateway generates (never the upstream's) goes through this table.
 */
export const GatewayErrors = {
  EDGEGATE_NO_ROUTE: { status: 404, message: 'no route matches this request' },
  EDGEGATE_CATALOG_UNKNOWN_DATACENTER: { status: 404, message: 'unknown or not exposed datacenter' },
  EDGEGATE_CATALOG_UNKNOWN_SERVICE: { status: 404, message: 'unknown or not exposed service' },
  EDGEGATE_NO_HEALTHY_UPSTREAM: { status: 503, message: 'no healthy upstream endpoint' },
  EDGEGATE_UPSTREAM_OVERLOADED: { status: 503, message: 'upstream has too many pending requests' },
  EDGEGATE_UPSTREAM_CONNECT: { status: 502, message: 'could not connect to the upstream' },
  EDGEGATE_UPSTREAM_RESET: { status: 502, message: 'the upstream closed the connection' },
  EDGEGATE_UPSTREAM_PROTOCOL: { status: 502, message: 'the upstream sent an invalid response' },
  EDGEGATE_UPSTREAM_TIMEOUT: { status: 504, message: 'the upstream did not answer in time' },
  // Consul service mesh (docs/consul.md, "Service mesh upstreams").
  EDGEGATE_MESH_INTENTION_DENIED: { status: 403, message: 'Consul intentions deny this upstream' },
  EDGEGATE_MESH_IDENTITY: { status: 502, message: 'the mesh upstream presented the wrong identity' },
  EDGEGATE_BAD_REQUEST: { status: 400, message: 'bad request' },
  EDGEGATE_MISDIRECTED: { status: 421, message: 'request host does not match the target authority' },
  EDGEGATE_SHUTTING_DOWN: { status: 503, message: 'the gateway is shutting down' },
  EDGEGATE_INTERNAL: { status: 500, message: 'internal gateway error' },
  EDGEGATE_BACKEND_INVALID: { status: 500, message: 'the route names a backend that cannot be served' },
  // Request policies (src/dataplane/policy/, docs/policies.md). Auth failures carry a `reason` in the JSON body.
  EDGEGATE_IP_DENIED: { status: 403, message: 'the client address is not allowed' },
  EDGEGATE_RATE_LIMITED: { status: 429, message: 'rate limit exceeded' },
  EDGEGATE_CONCURRENCY_LIMITED: { status: 503, message: 'too many requests in flight for this route' },
  EDGEGATE_OVERLOADED: { status: 503, message: 'the gateway is overloaded; lower-priority routes are shed' },
  EDGEGATE_SIGNATURE_INVALID: { status: 401, message: 'request signature verification failed' },
  EDGEGATE_JWT_INVALID: { status: 401, message: 'bearer token verification failed' },
  EDGEGATE_EXTERNAL_AUTH_UNAVAILABLE: { status: 503, message: 'the external auth service did not answer' },
  EDGEGATE_RATE_LIMIT_UNAVAILABLE: {
    status: 503,
    message: 'the shared rate-limit store did not answer (failureMode Closed)',
  },
  EDGEGATE_BODY_TOO_LARGE: { status: 413, message: 'request body exceeds the limit of this route' },
  // Clients that would hold upstream resources hostage (docs/security.md, "Upstream resources").
  EDGEGATE_CLIENT_BODY_TIMEOUT: { status: 408, message: 'the request body did not arrive in time' },
  EDGEGATE_CONNECTION_LIMITED: {
    status: 429,
    message: 'too many requests in flight on this connection',
  },
} as const satisfies Record<string, { status: number; message: string }>;

export type GatewayErrorCode = keyof typeof GatewayErrors;

export function errorStatus(code: GatewayErrorCode): number {
  return GatewayErrors[code].status;
}

/** The small JSON body every gateway-generated error carries. */
export function errorBody(
  code: GatewayErrorCode,
  requestId: string,
  message?: string,
  reason?: string,
): string {
  const body: Record<string, string> = { error: code, message: message ?? GatewayErrors[code].message };
  if (reason !== undefined) body.reason = reason;
  body.requestId = requestId;
  return JSON.stringify(body);
}

/** Error thrown for bad user input (config files, CLI arguments): the message already names object and field. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}
