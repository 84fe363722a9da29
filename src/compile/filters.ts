/**
 * compile: the CORS and ResponseCompression filters of a rule → table data (defaults filled, names folded), and a
 * RequestMirror's share. Pure.
 */
import {
  COMPRESSION_ALGORITHMS,
  DEFAULT_COMPRESSIBLE_TYPES,
  MIRROR_MAX_BODY_DEFAULT,
} from '../api/filter-schemas.ts';
import type { CorsFilterSpec, RequestMirrorSpec, ResponseCompressionSpec } from '../api/gateway-route.ts';
import type { CompressionData, CorsData } from '../table/types.ts';

/** Gateway API's default Access-Control-Max-Age. */
export const CORS_DEFAULT_MAX_AGE = 5;

export function corsDataOf(spec: CorsFilterSpec | undefined): CorsData | undefined {
  if (!spec) return undefined;
  return {
    allowOrigins: (spec.allowOrigins ?? []).map((o) => o.toLowerCase()),
    allowCredentials: spec.allowCredentials === true,
    allowMethods: [...(spec.allowMethods ?? [])],
    allowHeaders: (spec.allowHeaders ?? []).map((h) => h.toLowerCase()),
    exposeHeaders: (spec.exposeHeaders ?? []).map((h) => h.toLowerCase()),
    maxAge: spec.maxAge ?? CORS_DEFAULT_MAX_AGE,
  };
}

export function compressionDataOf(spec: ResponseCompressionSpec | undefined): CompressionData | undefined {
  if (!spec) return undefined;
  return {
    algorithms: [...(spec.algorithms ?? COMPRESSION_ALGORITHMS)],
    minSize: spec.minSize ?? 1024,
    contentTypes: [...(spec.contentTypes ?? DEFAULT_COMPRESSIBLE_TYPES)],
    gzipLevel: spec.gzipLevel ?? 5,
    brotliQuality: spec.brotliQuality ?? 4,
    zstdLevel: spec.zstdLevel ?? 3,
  };
}

/** The share of requests a mirror gets, 0..1 (default: all). */
export function mirrorShare(spec: RequestMirrorSpec): { fraction: number; maxBodyBytes: number } {
  const fraction =
    spec.percent !== undefined
      ? spec.percent / 100
      : spec.fraction
        ? spec.fraction.numerator / (spec.fraction.denominator ?? 100)
        : 1;
  return { fraction, maxBodyBytes: spec.maxBodySize ?? MIRROR_MAX_BODY_DEFAULT };
}
