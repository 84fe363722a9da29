/**
 * The checks of the CORS, RequestMirror and ResponseCompression filters that their schema cannot say (the same
 * rules as their CEL in the CRD), for validate.ts. Every error names the field.
 */
import type { CorsFilterSpec, RequestMirrorSpec, ResponseCompressionSpec } from './gateway-route.ts';

/** validate.ts's FieldPath and FieldError (declared again here: validate.ts imports this file). */
type FieldPath = (string | number)[];
interface FieldError {
  path: FieldPath;
  message: string;
}

function wildcardAlone(list: string[] | undefined, path: FieldPath, errors: FieldError[]): void {
  if (list && list.length > 1 && list.includes('*'))
    errors.push({ path, message: `"*" cannot be listed alongside other values` });
}

function duplicates(list: string[] | undefined, path: FieldPath, errors: FieldError[], fold: boolean): void {
  const seen = new Set<string>();
  list?.forEach((v, i) => {
    const k = fold ? v.toLowerCase() : v;
    if (seen.has(k)) errors.push({ path: [...path, i], message: `duplicate value ${JSON.stringify(v)}` });
    seen.add(k);
  });
}

export function checkCors(cors: CorsFilterSpec, path: FieldPath, errors: FieldError[]): void {
  wildcardAlone(cors.allowOrigins, [...path, 'allowOrigins'], errors);
  wildcardAlone(cors.allowMethods, [...path, 'allowMethods'], errors);
  wildcardAlone(cors.allowHeaders, [...path, 'allowHeaders'], errors);
  duplicates(cors.allowOrigins, [...path, 'allowOrigins'], errors, true);
  duplicates(cors.allowHeaders, [...path, 'allowHeaders'], errors, true);
  duplicates(cors.exposeHeaders, [...path, 'exposeHeaders'], errors, true);
  cors.allowOrigins?.forEach((o, i) => {
    const port = /:([0-9]+)$/.exec(o)?.[1];
    if (port !== undefined && !o.endsWith(']') && (Number(port) < 1 || Number(port) > 65535))
      errors.push({
        path: [...path, 'allowOrigins', i],
        message: `origin ${JSON.stringify(o)} has port ${port}, outside 1-65535`,
      });
  });
}

export function checkMirror(m: RequestMirrorSpec, path: FieldPath, errors: FieldError[]): void {
  const ref = m.backendRef;
  if ((ref.consul === undefined) === (ref.service === undefined))
    errors.push({ path: [...path, 'backendRef'], message: 'exactly one of consul or service must be set' });
  if (m.percent !== undefined && m.fraction !== undefined)
    errors.push({ path: [...path, 'fraction'], message: 'only one of percent or fraction may be set' });
  if (m.fraction && m.fraction.numerator > (m.fraction.denominator ?? 100))
    errors.push({
      path: [...path, 'fraction', 'numerator'],
      message: `numerator ${m.fraction.numerator} must not exceed denominator ${m.fraction.denominator ?? 100}`,
    });
}

export function checkCompression(c: ResponseCompressionSpec, path: FieldPath, errors: FieldError[]): void {
  duplicates(c.algorithms, [...path, 'algorithms'], errors, false);
  duplicates(c.contentTypes, [...path, 'contentTypes'], errors, false);
}
