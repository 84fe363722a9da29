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
 * error, which the API server reports as a rejection of this field. The API server checks RE2 syntax (no
 * lookaround or backreferences); the proxy compiles JS RegExp, so validate.ts still checks for routes that
 * reach it from files.
 */
const celRegexCompiles = (when: string): CelRule => ({
  rule: `!(${when}) || type(''.matches(self.value)) == bool`,
  message: 'value must be a valid regular expression',
  fieldPath: '.value',
});

/** A duration as Gateway API writes it: `1h`, `30s`, `250ms`, `1m30s`. */
export const Duration = Type.String({
  pattern: '^([0-9]{1,5}(h|m|s|ms)){1,4}$',
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

const PathModifier = Type.Object(
  {
    type: Type.Union([Type.Literal('ReplaceFullPath'), Type.Literal('ReplacePrefixMatch')]),
    replaceFullPath: Type.Optional(Type.String({ maxLength: 1024, pattern: '^/' })),
    replacePrefixMatch: Type.Optional(Type.String({ maxLength: 1024, pattern: '^/' })),
  },
  {
    ...strict,
    ...cel(
      ...(['ReplaceFullPath', 'ReplacePrefixMatch'] as const).flatMap((t) => {
        const field = t === 'ReplaceFullPath' ? 'replaceFullPath' : 'replacePrefixMatch';
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
] as const;

const Filter = Type.Object(
  {
    type: Type.Union(FILTER_TYPES.map((t) => Type.Literal(t))),
    requestHeaderModifier: Type.Optional(HeaderModifier),
    responseHeaderModifier: Type.Optional(HeaderModifier),
    urlRewrite: Type.Optional(URLRewrite),
    requestRedirect: Type.Optional(RequestRedirect),
  },
  {
    ...strict,
    description: 'Exactly the field named by type must be set.',
    ...cel(
      ...FILTER_TYPES.map((t) => [
        t,
        t === 'URLRewrite' ? 'urlRewrite' : t.charAt(0).toLowerCase() + t.slice(1),
      ]).flatMap(([t, field]) => {
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
  },
  { ...strict, description: 'Upstream connection pool, one per endpoint.' },
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
  },
  strict,
);

const KubeServiceBackend = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 63, description: 'Service name in the route’s namespace.' }),
    port: IntOrString({ description: 'Service port number or port name.' }),
  },
  strict,
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
      Type.Union([Type.Literal('http1'), Type.Literal('h2')], {
        default: 'http1',
        description: 'Protocol to the backend: h2 (HTTP/2 over TLS, e.g. gRPC) needs tls.',
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

const hasRedirect = "has(self.filters) && self.filters.exists(f, f.type == 'RequestRedirect')";
const prefixRewrite = (f: string) =>
  `(has(${f}) && has(${f}.path) && ${f}.path.type == 'ReplacePrefixMatch')`;

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
            rule: 'self.all(f, self.exists_one(g, g.type == f.type))',
            message: 'each filter type may appear once per rule',
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
    pool: Type.Optional(PoolSettings),
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
export type RouteBackend = Static<typeof Backend>;
export type HeaderModifierSpec = Static<typeof HeaderModifier>;
export type PathModifierSpec = Static<typeof PathModifier>;
export type CatalogRouteSpec = Static<typeof CatalogRoute>;
export type PoolSettingsSpec = Static<typeof PoolSettings>;
export type RouteTLSSpec = Static<typeof RouteTLS>;
export type BackendTLSSpec = Static<typeof BackendTLS>;
