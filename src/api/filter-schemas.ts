/**
 * The schemas of three route filters (Gateway API's `CORS` and `RequestMirror`, and edgegate's
 * `ResponseCompression`), used by the `Filter` object of gateway-route.ts. Same rules as that file: structural
 * schema, no unions but literals and int-or-string, "one of" checked by CEL and validate.ts (filter-checks.ts).
 */
import { Type } from '@sinclair/typebox';

const strict = { additionalProperties: false } as const;

/** RFC 9110's methods (the list of gateway-route.ts's HTTP_METHODS, which this file cannot import: a cycle). */
const HTTP_METHOD_LIST = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'];

const TOKEN = "^[A-Za-z0-9!#$%&'*+\\-.^_`|~]+$";

/**
 * A CORS origin as Gateway API writes it: `*`, or `http(s)://host[:port]` where the host may be `*` (every host) or
 * start with `*.` (any number of labels to its left). Ports are checked for range in validate.ts.
 */
export const CORS_ORIGIN_PATTERN =
  '^(\\*|https?://(\\*|(\\*\\.)?[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*|\\[[0-9A-Fa-f:.]+\\])(:[0-9]{1,5})?)$';

const CorsOrigin = Type.String({
  minLength: 1,
  maxLength: 253,
  pattern: CORS_ORIGIN_PATTERN,
  description:
    'An origin: "*" (every origin), or scheme://host[:port] with scheme http or https; the host may be "*" or begin with "*." (https://*.example.com).',
});

const CorsHeaderName = Type.String({
  minLength: 1,
  maxLength: 256,
  pattern: TOKEN,
  description: 'A header name, or "*" (every header).',
});

const onlyWildcard = (field: string) => ({
  rule: "!('*' in self && self.size() > 1)",
  message: `${field} cannot contain '*' alongside other values`,
});

export const CorsFilter = Type.Object(
  {
    allowOrigins: Type.Optional(
      Type.Array(CorsOrigin, {
        maxItems: 64,
        'x-kubernetes-list-type': 'set',
        description: 'Origins allowed to read responses ("*": any). Empty: none.',
        'x-kubernetes-validations': [onlyWildcard('allowOrigins')],
      }),
    ),
    allowCredentials: Type.Optional(
      Type.Boolean({
        description:
          'Send Access-Control-Allow-Credentials: true (then "*" is never sent back: the origin, method or headers are echoed).',
      }),
    ),
    allowMethods: Type.Optional(
      Type.Array(Type.Union([...HTTP_METHOD_LIST, '*'].map((m) => Type.Literal(m))), {
        maxItems: 10,
        'x-kubernetes-list-type': 'set',
        description: 'Methods a preflight allows ("*": any). GET, HEAD and POST are always allowed.',
        'x-kubernetes-validations': [onlyWildcard('allowMethods')],
      }),
    ),
    allowHeaders: Type.Optional(
      Type.Array(CorsHeaderName, {
        maxItems: 64,
        'x-kubernetes-list-type': 'set',
        description: 'Request headers a preflight allows ("*": any).',
        'x-kubernetes-validations': [onlyWildcard('allowHeaders')],
      }),
    ),
    exposeHeaders: Type.Optional(
      Type.Array(CorsHeaderName, {
        maxItems: 64,
        'x-kubernetes-list-type': 'set',
        description: 'Response headers scripts may read ("*": any, not sent with allowCredentials).',
      }),
    ),
    maxAge: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 2147483647,
        description:
          'Seconds a browser may cache a preflight answer (default 5; browsers cap it, Chrome at 2 h, Firefox at 24 h).',
      }),
    ),
  },
  {
    ...strict,
    description:
      'Cross-origin resource sharing (Gateway API HTTPCORSFilter): preflights are answered by the gateway, actual responses get the Access-Control-* headers.',
  },
);

const MirrorConsulRef = Type.Object(
  {
    service: Type.String({ minLength: 1, maxLength: 256, description: 'Consul service name.' }),
    datacenter: Type.Optional(
      Type.String({ minLength: 1, maxLength: 128, description: "Default: the local agent's." }),
    ),
    tags: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 256 }), { maxItems: 16 })),
    passingOnly: Type.Optional(Type.Boolean({ default: true })),
  },
  strict,
);

const MirrorServiceRef = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 63, description: 'Service name in the route’s namespace.' }),
    port: Type.Union(
      [Type.Integer({ minimum: 1, maximum: 65535 }), Type.String({ minLength: 1, maxLength: 63 })],
      { 'x-kubernetes-int-or-string': true, description: 'Service port number or port name.' },
    ),
  },
  strict,
);

export const MIRROR_MAX_BODY_DEFAULT = 65536;

export const RequestMirror = Type.Object(
  {
    backendRef: Type.Object(
      { consul: Type.Optional(MirrorConsulRef), service: Type.Optional(MirrorServiceRef) },
      {
        ...strict,
        description: 'Where copies go: exactly one of consul or service (plain HTTP/1.1, default pool).',
        'x-kubernetes-validations': [
          {
            rule: 'has(self.consul) != has(self.service)',
            message: 'exactly one of consul or service must be set',
          },
        ],
      },
    ),
    percent: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 100, description: 'Share of requests mirrored (default 100).' }),
    ),
    fraction: Type.Optional(
      Type.Object(
        {
          numerator: Type.Integer({ minimum: 0, maximum: 1000000 }),
          denominator: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000000, default: 100 })),
        },
        {
          ...strict,
          description: 'Share of requests mirrored as numerator/denominator.',
          'x-kubernetes-validations': [
            {
              rule: 'self.numerator <= (has(self.denominator) ? self.denominator : 100)',
              message: 'numerator must be less than or equal to denominator',
            },
          ],
        },
      ),
    ),
    maxBodySize: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 1048576,
        description: `Request bodies up to this many bytes are mirrored (default ${MIRROR_MAX_BODY_DEFAULT}); a larger one skips the mirror (counted), never the request.`,
      }),
    ),
  },
  {
    ...strict,
    description:
      'Send a copy of matching requests to another backend, fire-and-forget: its answers are discarded, it never delays or fails the request.',
    'x-kubernetes-validations': [
      {
        rule: '!(has(self.percent) && has(self.fraction))',
        message: 'only one of percent or fraction may be set',
      },
    ],
  },
);

export const COMPRESSION_ALGORITHMS = ['zstd', 'br', 'gzip'] as const;

/** Compressed unless listed otherwise: text (not event streams), JSON, JavaScript, XML, SVG. */
export const DEFAULT_COMPRESSIBLE_TYPES = [
  'text/*',
  'application/json',
  'application/*+json',
  'application/javascript',
  'application/xml',
  'application/*+xml',
  'image/svg+xml',
] as const;

const MediaRange = Type.String({
  minLength: 3,
  maxLength: 127,
  pattern: '^[a-z0-9][a-z0-9!#$&^_.+-]*/(\\*|\\*\\+[a-z0-9][a-z0-9!#$&^_.+-]*|[a-z0-9][a-z0-9!#$&^_.+-]*)$',
  description:
    'A lower-case media type (application/json), type/* (text/*) or type/*+suffix (application/*+json).',
});

export const ResponseCompression = Type.Object(
  {
    algorithms: Type.Optional(
      Type.Array(Type.Union(COMPRESSION_ALGORITHMS.map((a) => Type.Literal(a))), {
        minItems: 1,
        maxItems: 3,
        'x-kubernetes-list-type': 'set',
        description:
          'Encodings offered, in the gateway’s order of preference among those the client rates equally (default zstd, br, gzip).',
      }),
    ),
    minSize: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 16777216,
        description: 'Responses whose Content-Length is below this are sent as they are (default 1024).',
      }),
    ),
    contentTypes: Type.Optional(
      Type.Array(MediaRange, {
        maxItems: 32,
        'x-kubernetes-list-type': 'set',
        description:
          'Media types compressed (default text/*, application/json, application/*+json, application/javascript, application/xml, application/*+xml, image/svg+xml). text/event-stream only when listed by name (then flushed per chunk).',
      }),
    ),
    gzipLevel: Type.Optional(Type.Integer({ minimum: 1, maximum: 9, description: 'Default 5.' })),
    brotliQuality: Type.Optional(Type.Integer({ minimum: 0, maximum: 11, description: 'Default 4.' })),
    zstdLevel: Type.Optional(Type.Integer({ minimum: 1, maximum: 19, description: 'Default 3.' })),
  },
  {
    ...strict,
    description:
      'Compress responses the client accepts (Accept-Encoding), streaming; never an encoded, ranged, HEAD, 204 or 304 response.',
  },
);
