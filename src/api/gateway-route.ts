/**
 * GatewayRoute v1alpha1: the one schema, written once. It gives the TypeScript types (Static<>), the runtime
 * validation (validate.ts) and the CRD's openAPIV3Schema (scripts/gen-crd.ts).
 *
 * Rules for this file, so the CRD stays a valid structural schema:
 * - no type unions other than the Kubernetes int-or-string form;
 * - "one of" choices are optional sibling objects plus a `type` discriminator, checked in validate.ts and by CEL
 *   rules (`x-kubernetes-validations`) in the CRD, as Gateway API does for HTTPRoute filters.
 */

import { type Static, Type } from '@sinclair/typebox';
import { DURATION_PATTERN } from '../lib/duration.ts';
import { CorsFilter, RequestMirror, ResponseCompression } from './filter-schemas.ts';

export const API_GROUP = 'edgegate.io';
export const API_VERSION = 'v1alpha1';
export const KIND = 'GatewayRoute';

const strict = { additionalProperties: false } as const;

/**
 * CEL rules for the CRD (`x-kubernetes-validations`): what the schema alone cannot say. The API server enforces
 * them at `kubectl apply`; validate.ts checks the same rules for routes from files (and names the same fields).
 * `fieldPath` points the API server's message at the offending field.
 */
interface CelRule {
  rule: string;
  message: string;
  fieldPath?: string;
  reason?: 'FieldValueInvalid' | 'FieldValueRequired' | 'FieldValueForbidden' | 'FieldValueDuplicate';
}
function cel(...rules: CelRule[]): { 'x-kubernetes-validations': CelRule[] } {
  return { 'x-kubernetes-validations': rules };
}

/**
 * A regex compiles: CEL in the API server has no isRegex(); `matches` with an invalid pattern is an evaluation
 * error, which the API server reports as a rejection of this field. The API server checks RE2 syntax, so
 * `kubectl apply` already refuses backreferences and lookaround. The proxy runs the pattern on V8's linear-time
 * engine, whose syntax is narrower than RE2's (counted repetition up to 16, no inline flags, no `\pL`): validate.ts
 * checks that (linear-regex.ts) for every route whatever its source, and a route from the API server that fails it
 * is not served and gets Accepted=False naming the field.
 */
const celRegexCompiles = (when: string): CelRule => ({
  rule: `!(${when}) || type(''.matches(self.value)) == bool`,
  message: 'value must be a valid regular expression',
  fieldPath: '.value',
});

/** A duration as Gateway API writes it: `1h`, `30s`, `250ms`, `1m30s`. */
export const Duration = Type.String({
  pattern: DURATION_PATTERN,
  description: 'Duration such as 250ms, 5s, 1m30s.',
});

const HeaderName = Type.String({
  minLength: 1,
  maxLength: 256,
  pattern: "^[A-Za-z0-9!#$%&'*+\\-.^_`|~]+$",
  description: 'HTTP header name (RFC 7230 token).',
});

// Header values from route config must not carry CR, LF or NUL: they would split headers.
const HeaderValue = Type.String({
  maxLength: 4096,
  pattern: '^[^\\r\\n\\x00]*$',
  description: 'HTTP header value; CR, LF and NUL are refused.',
});

export const Hostname = Type.String({
  minLength: 1,
  maxLength: 253,
  pattern: '^(\\*\\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$',
  description: 'Exact hostname (api.example.com) or a wildcard (*.example.com) matching any subdomain.',
});

const PathMatch = Type.Object(
  {
    type: Type.Union([Type.Literal('Exact'), Type.Literal('PathPrefix'), Type.Literal('RegularExpression')], {
      default: 'PathPrefix',
      description: 'Exact, PathPrefix (element-wise: /a matches /a and /a/b, not /ab) or RegularExpression.',
    }),
    value: Type.String({ minLength: 1, maxLength: 1024, default: '/', description: 'The path or pattern.' }),
  },
  {
    ...strict,
    ...cel(
      {
        rule: "self.type == 'RegularExpression' || self.value.startsWith('/')",
        message: 'path must start with "/"',
        fieldPath: '.value',
      },
      celRegexCompiles("self.type == 'RegularExpression'"),
    ),
  },
);

const HeaderMatch = Type.Object(
  {
    type: Type.Union([Type.Literal('Exact'), Type.Literal('RegularExpression')], { default: 'Exact' }),
    name: HeaderName,
    // 1024 (not 4096): keeps the CRD's CEL regex check within the API server's cost budget.
    value: Type.String({ maxLength: 1024 }),
  },
  { ...strict, ...cel(celRegexCompiles("self.type == 'RegularExpression'")) },
);

const CookieMatch = Type.Object(
  {
    type: Type.Union([Type.Literal('Exact'), Type.Literal('RegularExpression')], { default: 'Exact' }),
    name: Type.String({ minLength: 1, maxLength: 256, pattern: "^[A-Za-z0-9!#$%&'*+\\-.^_`|~]+$" }),
    value: Type.String({ maxLength: 1024 }),
  },
  {
    ...strict,
    description: 'A cookie of the Cookie request header (header/cookie canaries).',
    ...cel(celRegexCompiles("self.type == 'RegularExpression'")),
  },
);

const QueryParamMatch = Type.Object(
  {
    type: Type.Union([Type.Literal('Exact'), Type.Literal('RegularExpression')], { default: 'Exact' }),
    name: Type.String({ minLength: 1, maxLength: 256 }),
    // 1024 (not 4096): keeps the CRD's CEL regex check within the API server's cost budget.
    value: Type.String({ maxLength: 1024 }),
  },
  { ...strict, ...cel(celRegexCompiles("self.type == 'RegularExpression'")) },
);

export const HTTP_METHODS = [
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'DELETE',
  'CONNECT',
  'OPTIONS',
  'TRACE',
  'PATCH',
] as const;

const Match = Type.Object(
  {
    path: Type.Optional(PathMatch),
    headers: Type.Optional(Type.Array(HeaderMatch, { maxItems: 16 })),
    queryParams: Type.Optional(Type.Array(QueryParamMatch, { maxItems: 16 })),
    cookies: Type.Optional(Type.Array(CookieMatch, { maxItems: 16 })),
    method: Type.Optional(Type.Union(HTTP_METHODS.map((m) => Type.Literal(m)))),
  },
  {
    ...strict,
    description: 'All conditions of one match must hold; a rule matches when any of its matches does.',
  },
);

const HeaderPair = Type.Object({ name: HeaderName, value: HeaderValue }, strict);

const HeaderModifier = Type.Object(
  {
    set: Type.Optional(Type.Array(HeaderPair, { maxItems: 16, description: 'Replace these headers.' })),
    add: Type.Optional(Type.Array(HeaderPair, { maxItems: 16, description: 'Append to these headers.' })),
    remove: Type.Optional(Type.Array(HeaderName, { maxItems: 16, description: 'Remove these headers.' })),
  },
  strict,
);

const PATH_MODIFIER_FIELDS = {
  ReplaceFullPath: 'replaceFullPath',
  ReplacePrefixMatch: 'replacePrefixMatch',
  ReplaceRegexMatch: 'replaceRegexMatch',
} as const;

const PathModifier = Type.Object(
  {
    type: Type.Union([
      Type.Literal('ReplaceFullPath'),
      Type.Literal('ReplacePrefixMatch'),
      Type.Literal('ReplaceRegexMatch'),
    ]),
    replaceFullPath: Type.Optional(Type.String({ maxLength: 1024, pattern: '^/' })),
    replacePrefixMatch: Type.Optional(Type.String({ maxLength: 1024, pattern: '^/' })),
    replaceRegexMatch: Type.Optional(
      Type.String({
        maxLength: 1024,
        pattern: '^/',
        description:
          'The new path: $1…$9 stand for the capture groups of the rule’s RegularExpression path match (ingress-nginx rewrite-target); the whole path is replaced.',
      }),
    ),
  },
  {
    ...strict,
    ...cel(
      ...(Object.keys(PATH_MODIFIER_FIELDS) as (keyof typeof PATH_MODIFIER_FIELDS)[]).flatMap((t) => {
        const field = PATH_MODIFIER_FIELDS[t];
        return [
          {
            rule: `self.type != '${t}' || has(self.${field})`,
            message: `${field} is required with type ${t}`,
            fieldPath: `.${field}`,
            reason: 'FieldValueRequired' as const,
          },
          {
            rule: `self.type == '${t}' || !has(self.${field})`,
            message: `${field} is only allowed with type ${t}`,
            fieldPath: `.${field}`,
            reason: 'FieldValueForbidden' as const,
          },
        ];
      }),
    ),
  },
);

const URLRewrite = Type.Object(
  {
    hostname: Type.Optional(Hostname),
    path: Type.Optional(PathModifier),
  },
  strict,
);

const RequestRedirect = Type.Object(
  {
    scheme: Type.Optional(Type.Union([Type.Literal('http'), Type.Literal('https')])),
    hostname: Type.Optional(Hostname),
    port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
    path: Type.Optional(PathModifier),
    statusCode: Type.Optional(
      Type.Union(
        [Type.Literal(301), Type.Literal(302), Type.Literal(303), Type.Literal(307), Type.Literal(308)],
        {
          default: 302,
        },
      ),
    ),
  },
  strict,
);

export const FILTER_TYPES = [
  'RequestHeaderModifier',
  'ResponseHeaderModifier',
  'URLRewrite',
  'RequestRedirect',
  'CORS',
  'RequestMirror',
  'ResponseCompression',
] as const;

/** The field each filter type carries (Gateway API's names). */
export const FILTER_FIELDS = {
  RequestHeaderModifier: 'requestHeaderModifier',
  ResponseHeaderModifier: 'responseHeaderModifier',
  URLRewrite: 'urlRewrite',
  RequestRedirect: 'requestRedirect',
  CORS: 'cors',
  RequestMirror: 'requestMirror',
  ResponseCompression: 'responseCompression',
} as const satisfies Record<(typeof FILTER_TYPES)[number], string>;

const Filter = Type.Object(
  {
    type: Type.Union(FILTER_TYPES.map((t) => Type.Literal(t))),
    requestHeaderModifier: Type.Optional(HeaderModifier),
    responseHeaderModifier: Type.Optional(HeaderModifier),
    urlRewrite: Type.Optional(URLRewrite),
    requestRedirect: Type.Optional(RequestRedirect),
    cors: Type.Optional(CorsFilter),
    requestMirror: Type.Optional(RequestMirror),
    responseCompression: Type.Optional(ResponseCompression),
  },
  {
    ...strict,
    description: 'Exactly the field named by type must be set.',
    ...cel(
      ...FILTER_TYPES.map((t) => [t, FILTER_FIELDS[t]]).flatMap(([t, field]) => {
        return [
          {
            rule: `self.type != '${t}' || has(self.${field})`,
            message: `filter of type ${t} needs ${field}`,
            fieldPath: `.${field}`,
            reason: 'FieldValueRequired' as const,
          },
          {
            rule: `self.type == '${t}' || !has(self.${field})`,
            message: `${field} is only allowed with type ${t}`,
            fieldPath: `.${field}`,
            reason: 'FieldValueForbidden' as const,
          },
        ];
      }),
    ),
  },
);

/** Kubernetes int-or-string, the one union a structural schema allows. */
function IntOrString(options: { description: string }) {
  return Type.Union(
    [Type.Integer({ minimum: 1, maximum: 65535 }), Type.String({ minLength: 1, maxLength: 63 })],
    {
      'x-kubernetes-int-or-string': true,
      ...options,
    },
  );
}

export const PoolSettings = Type.Object(
  {
    maxConnections: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 10000, description: 'Connections per endpoint (default 128).' }),
    ),
    keepAliveTimeout: Type.Optional(
      Type.String({ ...Duration, description: 'Idle time before a pooled connection closes (default 4s).' }),
    ),
    pipelining: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 64,
        description: 'Requests in flight per connection (default 1).',
      }),
    ),
    connectTimeout: Type.Optional(
      Type.String({ ...Duration, description: 'TCP connect timeout (default 5s).' }),
    ),
    maxPendingRequests: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 1000000,
        description:
          'Requests that may wait for a connection beyond maxConnections × pipelining (default 1024); more are answered 503 EDGEGATE_UPSTREAM_OVERLOADED at once.',
      }),
    ),
  },
  { ...strict, description: 'Upstream connection pool, one per endpoint.' },
);

export const LB_TYPES = ['RoundRobin', 'LeastRequest', 'ConsistentHash'] as const;

const ConsistentHash = Type.Object(
  {
    header: Type.Optional(
      Type.String({ ...HeaderName, description: 'Hash the value of this request header.' }),
    ),
    cookie: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 256,
        pattern: "^[A-Za-z0-9!#$%&'*+\\-.^_`|~]+$",
        description: 'Hash the value of this cookie.',
      }),
    ),
    sourceIP: Type.Optional(Type.Boolean({ description: 'Hash the client address.' })),
  },
  { ...strict, description: 'Exactly one of header, cookie or sourceIP.' },
);

export const LoadBalancer = Type.Object(
  {
    type: Type.Union(
      LB_TYPES.map((t) => Type.Literal(t)),
      {
        default: 'RoundRobin',
        description:
          'RoundRobin (smooth weighted), LeastRequest (power of two choices on in-flight requests) or ConsistentHash (ring hash: a key keeps its endpoint while the endpoint stays).',
      },
    ),
    consistentHash: Type.Optional(ConsistentHash),
  },
  {
    ...strict,
    description: 'How an endpoint is picked inside a backend.',
    ...cel(
      {
        rule:
          "self.type != 'ConsistentHash' || (has(self.consistentHash) && " +
          '(has(self.consistentHash.header) ? 1 : 0) + (has(self.consistentHash.cookie) ? 1 : 0) + ' +
          '(has(self.consistentHash.sourceIP) && self.consistentHash.sourceIP ? 1 : 0) == 1)',
        message: 'type ConsistentHash needs exactly one of header, cookie or sourceIP: true',
        fieldPath: '.consistentHash',
      },
      {
        rule: "self.type == 'ConsistentHash' || !has(self.consistentHash)",
        message: 'consistentHash is only allowed with type ConsistentHash',
        fieldPath: '.consistentHash',
        reason: 'FieldValueForbidden',
      },
    ),
  },
);

export const Timeouts = Type.Object(
  {
    request: Type.Optional(
      Type.String({
        ...Duration,
        description: 'Whole request as the client sees it, retries included (default: none; 0s: none).',
      }),
    ),
    backendRequest: Type.Optional(
      Type.String({
        ...Duration,
        description:
          'One try, until the upstream response is complete: the per-try timeout (default: none; 0s: none).',
      }),
    ),
    responseHeaders: Type.Optional(
      Type.String({ ...Duration, description: 'One try, until the response headers (default 60s).' }),
    ),
    idle: Type.Optional(
      Type.String({
        ...Duration,
        description: 'Longest pause between two chunks of the response body (default 60s).',
      }),
    ),
  },
  {
    ...strict,
    description: 'Gateway API style timeouts, plus response headers and body idle.',
    ...cel({
      rule:
        "!(has(self.request) && has(self.backendRequest)) || duration(self.request) == duration('0s') || " +
        'duration(self.backendRequest) <= duration(self.request)',
      message: 'backendRequest must not exceed request',
      fieldPath: '.backendRequest',
    }),
  },
);

export const RETRY_ON = ['connect-failure', 'reset', 'timeout', '5xx', '502', '503', '504'] as const;

export const Retry = Type.Object(
  {
    attempts: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 10,
        description: 'Retries after the first try (default 1; 0 turns retries off).',
      }),
    ),
    // Not `on`: YAML 1.1 parsers (kubectl's among them) read an unquoted `on` key as the boolean true.
    retryOn: Type.Optional(
      Type.Array(Type.Union(RETRY_ON.map((t) => Type.Literal(t))), {
        maxItems: 7,
        description: 'What a retry is for (default [connect-failure, reset]).',
      }),
    ),
    backoff: Type.Optional(
      Type.String({ ...Duration, description: 'Pause before each retry (default 0s).' }),
    ),
  },
  {
    ...strict,
    description:
      'Retries of idempotent requests without a body (GET, HEAD, OPTIONS, TRACE, PUT, DELETE), to another endpoint when there is one, within the worker retry budget.',
  },
);

/** Cross-datacenter failover of a Consul service (docs/consul.md), modelled on Consul prepared-query failover. */
export const ConsulFailover = Type.Object(
  {
    datacenters: Type.Array(Type.String({ minLength: 1, maxLength: 128 }), {
      minItems: 1,
      maxItems: 16,
      description:
        'Fallback datacenters, in order: when the primary datacenter has no healthy instance (in Consul, or all ejected by outlier detection), each request goes to the first of these that has one; back to the primary as soon as it has one again.',
    }),
  },
  { ...strict, description: 'Failover to other datacenters, decided per request.' },
);

const ConsulBackend = Type.Object(
  {
    service: Type.String({ minLength: 1, maxLength: 256, description: 'Consul service name.' }),
    datacenter: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 128,
        description: "Consul datacenter; default: the local agent's.",
      }),
    ),
    tags: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 256 }), {
        maxItems: 16,
        description: 'Only instances carrying every one of these tags.',
      }),
    ),
    passingOnly: Type.Optional(
      Type.Boolean({
        default: true,
        description: 'true: only passing instances; false: passing and warning.',
      }),
    ),
    failover: Type.Optional(ConsulFailover),
    mesh: Type.Optional(
      Type.Boolean({
        default: false,
        description:
          'Reach the service over Consul service mesh (Connect): its mesh addresses (/v1/health/connect), mTLS with the gateway leaf certificate, the upstream SPIFFE identity checked, intentions honoured (docs/consul.md).',
      }),
    ),
    peer: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 64,
        pattern: '^[a-z0-9]([a-z0-9-]*[a-z0-9])?$',
        description: 'Consul cluster peer exporting the service (instead of datacenter).',
      }),
    ),
  },
  {
    ...strict,
    ...cel(
      { rule: '!has(self.peer) || !has(self.datacenter)', message: 'peer and datacenter are exclusive' },
      {
        rule: '!has(self.peer) || !has(self.mesh) || !self.mesh',
        message: 'mesh to a peered service is not supported',
      },
    ),
  },
);

const KubeServiceBackend = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 63, description: 'Service name in the route’s namespace.' }),
    port: IntOrString({ description: 'Service port number or port name.' }),
    namespace: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 63,
        description:
          'Set only by the Gateway API translation, for an HTTPRoute backendRef a ReferenceGrant allows; refused in a GatewayRoute.',
      }),
    ),
  },
  {
    ...strict,
    ...cel({
      rule: '!has(self.namespace)',
      message: 'a GatewayRoute backend names a Service in its own namespace',
      fieldPath: '.namespace',
      reason: 'FieldValueForbidden',
    }),
  },
);

/** TLS from the gateway to the backend (upstream TLS). */
export const BackendTLS = Type.Object(
  {
    serverName: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 253,
        description: 'SNI and the name the upstream certificate must carry (default: the endpoint address).',
      }),
    ),
    caBundle: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 65536,
        description:
          'PEM CA certificates that sign the upstream certificate (default: the system trust store).',
      }),
    ),
    clientCertificateRef: Type.Optional(
      Type.Object(
        {
          name: Type.String({
            minLength: 1,
            maxLength: 253,
            pattern: '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$',
            description:
              'Secret name (Kubernetes) or the NAME of a --upstream-client-cert NAMESPACE/NAME=… flag.',
          }),
        },
        {
          ...strict,
          description:
            'Client certificate the gateway presents to the upstream (mTLS): a kubernetes.io/tls Secret in the route’s namespace, or in standalone mode the --upstream-client-cert entry of that namespace and name. The key never enters the routing table.',
        },
      ),
    ),
  },
  { ...strict, description: 'Connect to the backend over TLS.' },
);

const Backend = Type.Object(
  {
    consul: Type.Optional(ConsulBackend),
    service: Type.Optional(KubeServiceBackend),
    weight: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 1000000, default: 1, description: 'Relative share of requests.' }),
    ),
    pool: Type.Optional(PoolSettings),
    tls: Type.Optional(BackendTLS),
    protocol: Type.Optional(
      Type.Union([Type.Literal('http1'), Type.Literal('h2'), Type.Literal('h2c')], {
        default: 'http1',
        description:
          'Protocol to the backend: h2 (HTTP/2 over TLS, e.g. gRPC) needs tls; h2c (cleartext HTTP/2 with prior knowledge, e.g. plaintext gRPC inside a cluster) excludes it.',
      }),
    ),
  },
  {
    ...strict,
    description: 'Exactly one of consul or service.',
    ...cel({
      rule: 'has(self.consul) != has(self.service)',
      message: 'exactly one of consul or service must be set',
    }),
  },
);

// ── Request policies (docs/policies.md): run in a fixed order after the match, before balancing ──────────────

export const POLICY_PRIORITIES = ['Low', 'Normal', 'High', 'Critical'] as const;
export const RATE_LIMIT_KEYS = ['Route', 'ClientAddress', 'Header'] as const;
/** JWT algorithms a rule may allow. `none` is deliberately not among them. */
export const JWT_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'HS256',
  'HS384',
  'HS512',
] as const;

const KeySetName = Type.String({
  minLength: 1,
  maxLength: 253,
  pattern: '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$',
  description:
    'Key set: a directory under --secrets-dir with one file per key id (in Kubernetes: a Secret mounted there).',
});

const Cidr = Type.String({
  minLength: 2,
  maxLength: 64,
  pattern: '^[0-9A-Fa-f:.]+(/[0-9]{1,3})?$',
  description: 'IPv4 or IPv6 CIDR (10.0.0.0/8, 2001:db8::/32) or a single address.',
});

const HttpUrl = Type.String({
  minLength: 8,
  maxLength: 2048,
  pattern: '^https?://[^\\s]+$',
  description: 'An http:// or https:// URL.',
});

const RateLimit = Type.Object(
  {
    requests: Type.Integer({ minimum: 1, maximum: 1000000000, description: 'Requests allowed per period.' }),
    period: Type.Optional(Type.String({ ...Duration, description: 'The period (default 1s).' })),
    burst: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 1000000000,
        description: 'Requests that may come at once after a quiet spell (default: requests).',
      }),
    ),
    key: Type.Optional(
      Type.Union(
        RATE_LIMIT_KEYS.map((k) => Type.Literal(k)),
        {
          default: 'Route',
          description:
            'One bucket for the whole rule (Route), per client address (ClientAddress, see --trusted-hops), or per value of a header (Header).',
        },
      ),
    ),
    header: Type.Optional(
      Type.String({ ...HeaderName, description: 'The header whose value keys the bucket (key: Header).' }),
    ),
    scope: Type.Optional(
      Type.Union([Type.Literal('Node'), Type.Literal('Global')], {
        default: 'Node',
        description:
          'Node: the bucket is this pod’s (every worker shares it). Global: one bucket for every gateway, kept in Redis (--redis-url).',
      }),
    ),
    failureMode: Type.Optional(
      Type.Union([Type.Literal('Open'), Type.Literal('Closed')], {
        description:
          'scope Global only (default Open): Redis down or slower than --redis-timeout → Open lets the request through (counted, logged), Closed answers 503.',
      }),
    ),
  },
  {
    ...strict,
    description:
      'Token bucket, pod-wide (shared by every worker) or, with scope Global, shared by every gateway through Redis: 429 with Retry-After beyond it.',
    ...cel(
      {
        rule: "has(self.key) && self.key == 'Header' ? has(self.header) : !has(self.header)",
        message: 'header is required with key Header and only allowed with it',
        fieldPath: '.header',
      },
      {
        rule: "!has(self.failureMode) || (has(self.scope) && self.scope == 'Global')",
        message: 'failureMode is only allowed with scope Global',
        fieldPath: '.failureMode',
      },
    ),
  },
);

const SignaturePolicy = Type.Object(
  {
    keySet: KeySetName,
    header: Type.Optional(
      Type.String({
        ...HeaderName,
        description: 'Header with keyId="…", signature="…" (default x-signature).',
      }),
    ),
    dateHeader: Type.Optional(
      Type.String({ ...HeaderName, description: 'Signed date header (default date).' }),
    ),
    nonceHeader: Type.Optional(
      Type.String({
        ...HeaderName,
        description: 'Optional signed nonce header (default x-signature-nonce).',
      }),
    ),
    clockSkew: Type.Optional(
      Type.String({
        ...Duration,
        description: 'Accepted distance of the date from now, either way (default 5m).',
      }),
    ),
    maxBodySize: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 67108864,
        description: 'Bodies are held until verified, up to this many bytes (default 1048576); larger: 413.',
      }),
    ),
  },
  {
    ...strict,
    description: 'HMAC-SHA256 request signatures over method, path, query, date and body digest.',
  },
);

const ClaimHeader = Type.Object(
  {
    claim: Type.String({
      minLength: 1,
      maxLength: 256,
      description: 'Top-level claim name (sub, scope, …).',
    }),
    header: HeaderName,
  },
  strict,
);

const JwtPolicy = Type.Object(
  {
    jwksUrl: Type.Optional(
      Type.String({ ...HttpUrl, description: 'JWKS endpoint. One of jwksUrl or keySet.' }),
    ),
    jwksCacheDuration: Type.Optional(
      Type.String({ ...Duration, description: 'How long fetched keys are reused (default 10m).' }),
    ),
    keySet: Type.Optional(
      Type.String({ ...KeySetName, description: 'Static keys, one file per kid. One of jwksUrl or keySet.' }),
    ),
    issuer: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, description: 'Required iss.' })),
    audiences: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 1024 }), {
        maxItems: 16,
        description: 'The aud claim must contain one of these.',
      }),
    ),
    algorithms: Type.Array(Type.Union(JWT_ALGORITHMS.map((a) => Type.Literal(a))), {
      minItems: 1,
      maxItems: 13,
      description: 'Accepted signing algorithms (none is never accepted).',
    }),
    clockSkew: Type.Optional(
      Type.String({ ...Duration, description: 'Leeway for exp and nbf (default 30s).' }),
    ),
    header: Type.Optional(
      Type.String({
        ...HeaderName,
        description: 'Header carrying "Bearer <token>" (default authorization).',
      }),
    ),
    forwardClaims: Type.Optional(
      Type.Array(ClaimHeader, {
        maxItems: 16,
        description: 'Claims copied into upstream request headers (client copies are removed).',
      }),
    ),
  },
  {
    ...strict,
    description: 'Bearer JWT verification.',
    ...cel({
      rule: 'has(self.jwksUrl) != has(self.keySet)',
      message: 'exactly one of jwksUrl or keySet must be set',
    }),
  },
);

const ExternalAuthPolicy = Type.Object(
  {
    url: Type.String({
      ...HttpUrl,
      description: 'Auth service URL; GET with X-Forwarded-Method/-Uri/-Host/-For.',
    }),
    timeout: Type.Optional(Type.String({ ...Duration, description: 'Default 1s.' })),
    failureMode: Type.Optional(
      Type.Union([Type.Literal('Closed'), Type.Literal('Open')], {
        default: 'Closed',
        description: 'Auth service unreachable or slow: Closed answers 503, Open lets the request through.',
      }),
    ),
    requestHeaders: Type.Optional(
      Type.Array(HeaderName, { maxItems: 32, description: 'Request headers sent to the auth service.' }),
    ),
    responseHeaders: Type.Optional(
      Type.Array(HeaderName, {
        maxItems: 32,
        description: 'Auth response headers copied upstream on a 2xx.',
      }),
    ),
    maxResponseBodySize: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 1048576,
        description: 'Denial body passed on, at most (default 65536).',
      }),
    ),
  },
  {
    ...strict,
    description: 'Ask an auth service; a 2xx lets the request through, anything else is returned.',
  },
);

export const Policies = Type.Object(
  {
    priority: Type.Optional(
      Type.Union(
        POLICY_PRIORITIES.map((p) => Type.Literal(p)),
        {
          default: 'Normal',
          description: 'Overload shedding order: Low first, then Normal, then High; Critical is never shed.',
        },
      ),
    ),
    ipAllow: Type.Optional(
      Type.Array(Cidr, {
        maxItems: 256,
        description: 'Only these client addresses (after the global lists).',
      }),
    ),
    ipDeny: Type.Optional(Type.Array(Cidr, { maxItems: 256, description: 'Never these client addresses.' })),
    rateLimit: Type.Optional(RateLimit),
    maxConcurrentRequests: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 1000000,
        description: 'Requests in flight for this rule (pod-wide, divided among workers); more: 503.',
      }),
    ),
    signature: Type.Optional(SignaturePolicy),
    jwt: Type.Optional(JwtPolicy),
    externalAuth: Type.Optional(ExternalAuthPolicy),
  },
  { ...strict, description: 'Request policies, applied in a fixed order (docs/policies.md).' },
);
const hasRedirect = "has(self.filters) && self.filters.exists(f, f.type == 'RequestRedirect')";
const prefixRewrite = (f: string) =>
  `(has(${f}) && has(${f}.path) && ${f}.path.type == 'ReplacePrefixMatch')`;
const regexRewrite = (f: string) => `(has(${f}) && has(${f}.path) && ${f}.path.type == 'ReplaceRegexMatch')`;

const Rule = Type.Object(
  {
    name: Type.Optional(Type.String({ maxLength: 63, pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$' })),
    matches: Type.Optional(
      Type.Array(Match, { maxItems: 8, description: 'Default: one PathPrefix / match (everything).' }),
    ),
    filters: Type.Optional(
      Type.Array(Filter, {
        maxItems: 16,
        ...cel(
          {
            rule: "self.all(f, f.type == 'RequestMirror' || self.exists_one(g, g.type == f.type))",
            message: 'each filter type may appear once per rule (RequestMirror excepted)',
          },
          {
            rule: "!self.exists(f, f.type == 'RequestRedirect') || !self.exists(f, f.type in ['CORS', 'RequestMirror', 'ResponseCompression'])",
            message: 'a RequestRedirect rule cannot have CORS, RequestMirror or ResponseCompression filters',
          },
          {
            rule: "!(self.exists(f, f.type == 'URLRewrite') && self.exists(f, f.type == 'RequestRedirect'))",
            message: 'URLRewrite and RequestRedirect cannot be combined',
          },
        ),
      }),
    ),
    backends: Type.Optional(
      Type.Array(Backend, {
        maxItems: 16,
        description: 'Required unless a RequestRedirect filter answers.',
        ...cel({
          rule: 'size(self) == 0 || self.exists(b, !has(b.weight) || b.weight > 0)',
          message: 'the weights of a rule must sum above zero',
        }),
      }),
    ),
    loadBalancer: Type.Optional(LoadBalancer),
    timeouts: Type.Optional(Timeouts),
    retry: Type.Optional(Retry),
    policies: Type.Optional(Policies),
    maxRequestBodySize: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 1099511627776,
        description:
          'Largest request body in bytes (ingress-nginx proxy-body-size): a larger declared Content-Length gets 413 at once; a body without one is read up to this size before it is forwarded, and gets 413 beyond it.',
      }),
    ),
    httpsRedirect: Type.Optional(
      Type.Union([Type.Literal(301), Type.Literal(302), Type.Literal(307), Type.Literal(308)], {
        description:
          'A request that came over plain HTTP gets this redirect to the same host, path and query on HTTPS (port 443); HTTPS requests go to the backends (ingress-nginx ssl-redirect).',
      }),
    ),
  },
  {
    ...strict,
    ...cel(
      {
        rule: `!(${hasRedirect}) || !has(self.backends) || size(self.backends) == 0`,
        message: 'a rule with a RequestRedirect filter has no backends',
        fieldPath: '.backends',
        reason: 'FieldValueForbidden',
      },
      {
        rule: `(${hasRedirect}) || (has(self.backends) && size(self.backends) > 0)`,
        message: 'at least one backend is required',
        fieldPath: '.backends',
        reason: 'FieldValueRequired',
      },
      {
        rule:
          `!has(self.filters) || !self.filters.exists(f, ${prefixRewrite('f.urlRewrite')} || ` +
          `${prefixRewrite('f.requestRedirect')}) || !has(self.matches) || ` +
          "self.matches.all(m, !has(m.path) || m.path.type == 'PathPrefix')",
        message: 'ReplacePrefixMatch needs every match of the rule to be a PathPrefix match',
        fieldPath: '.matches',
      },
      {
        rule:
          `!has(self.filters) || !self.filters.exists(f, ${regexRewrite('f.urlRewrite')} || ` +
          `${regexRewrite('f.requestRedirect')}) || (has(self.matches) && size(self.matches) > 0 && ` +
          "self.matches.all(m, has(m.path) && m.path.type == 'RegularExpression'))",
        message: 'ReplaceRegexMatch needs every match of the rule to be a RegularExpression path match',
        fieldPath: '.matches',
      },
    ),
  },
);

export const CatalogRoute = Type.Object(
  {
    pathPrefix: Type.String({
      default: '/',
      minLength: 1,
      maxLength: 256,
      pattern: '^/',
      description: 'Requests under this prefix are /{datacenter}/{service}/{rest}.',
    }),
    requiredTags: Type.Array(Type.String({ minLength: 1, maxLength: 256 }), {
      default: [],
      maxItems: 16,
      description: 'Only services whose instances carry every one of these tags are exposed.',
    }),
    datacenters: Type.Array(Type.String({ minLength: 1, maxLength: 128 }), {
      default: [],
      maxItems: 64,
      description: 'Allowed datacenters; empty: every datacenter Consul knows.',
    }),
    passingOnly: Type.Optional(Type.Boolean({ default: true })),
    failover: Type.Optional(ConsulFailover),
    peers: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-z0-9]([a-z0-9-]*[a-z0-9])?$' }), {
        maxItems: 64,
        description:
          'Cluster peers whose exported services (with the required tags) are exposed at {pathPrefix}/peer/{peer}/{service}/{rest}.',
      }),
    ),
    pool: Type.Optional(PoolSettings),
    policies: Type.Optional(Policies),
    loadBalancer: Type.Optional(LoadBalancer),
    timeouts: Type.Optional(Timeouts),
    retry: Type.Optional(Retry),
  },
  {
    ...strict,
    description: 'The resty-gate form: one rule exposing Consul services at /{dc}/{service}/{rest}.',
  },
);

/** A certificate for some of the route's hostnames, from a `kubernetes.io/tls` Secret in the route's namespace. */
export const RouteTLS = Type.Object(
  {
    hostnames: Type.Optional(
      Type.Array(Hostname, {
        maxItems: 16,
        description: 'Which of spec.hostnames this certificate serves (default: all of them).',
      }),
    ),
    secretName: Type.String({
      minLength: 1,
      maxLength: 253,
      pattern: '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$',
      description: 'A kubernetes.io/tls Secret (tls.crt, tls.key) in the route’s namespace.',
    }),
  },
  strict,
);

export const GatewayRouteSpec = Type.Object(
  {
    hostnames: Type.Optional(
      Type.Array(Hostname, {
        maxItems: 16,
        'x-kubernetes-list-type': 'set',
        description: 'Hosts this route serves; empty: every host not claimed by a more specific route.',
      }),
    ),
    rules: Type.Optional(Type.Array(Rule, { maxItems: 64 })),
    catalog: Type.Optional(CatalogRoute),
    tls: Type.Optional(
      Type.Array(RouteTLS, { maxItems: 16, description: 'Certificates for the HTTPS listener (SNI).' }),
    ),
  },
  {
    ...strict,
    description: 'Either rules or catalog.',
    ...cel({
      rule: 'has(self.rules) != has(self.catalog)',
      message: 'a route has either rules or catalog, not both',
    }),
  },
);

export const ObjectMeta = Type.Object(
  {
    name: Type.String({
      minLength: 1,
      maxLength: 253,
      pattern: '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$',
    }),
    namespace: Type.Optional(
      Type.String({ minLength: 1, maxLength: 63, pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$' }),
    ),
    creationTimestamp: Type.Optional(Type.String()),
    generation: Type.Optional(Type.Integer()),
  },
  // Kubernetes adds many metadata fields (uid, labels, managedFields…): accept them.
  { additionalProperties: true },
);

export const GatewayRoute = Type.Object(
  {
    apiVersion: Type.Literal(`${API_GROUP}/${API_VERSION}`),
    kind: Type.Literal(KIND),
    metadata: ObjectMeta,
    spec: GatewayRouteSpec,
    status: Type.Optional(Type.Unknown()),
  },
  strict,
);

export type GatewayRoute = Static<typeof GatewayRoute>;
export type GatewayRouteSpec = Static<typeof GatewayRouteSpec>;
export type RouteRule = Static<typeof Rule>;
export type RouteMatch = Static<typeof Match>;
export type RouteFilter = Static<typeof Filter>;
export type CorsFilterSpec = Static<typeof CorsFilter>;
export type RequestMirrorSpec = Static<typeof RequestMirror>;
export type ResponseCompressionSpec = Static<typeof ResponseCompression>;
export type RouteBackend = Static<typeof Backend>;
export type HeaderModifierSpec = Static<typeof HeaderModifier>;
export type PathModifierSpec = Static<typeof PathModifier>;
export type CatalogRouteSpec = Static<typeof CatalogRoute>;
export type PoolSettingsSpec = Static<typeof PoolSettings>;
export type PoliciesSpec = Static<typeof Policies>;
export type LoadBalancerSpec = Static<typeof LoadBalancer>;
export type TimeoutsSpec = Static<typeof Timeouts>;
export type RetrySpec = Static<typeof Retry>;
export type RouteTLSSpec = Static<typeof RouteTLS>;
export type BackendTLSSpec = Static<typeof BackendTLS>;
