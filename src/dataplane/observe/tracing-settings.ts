/**
 * Tracing settings of a proxy process, resolved once in the primary from the `run` flags and the OpenTelemetry
 * environment variables (flags win), and handed to every worker as plain data. Tracing is off unless an OTLP
 * endpoint is configured (`--otlp-endpoint`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`),
 * and `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` turn it off again. A value that cannot be used is
 * an error naming the flag or variable (the gateway does not start), never a silent default.
 */

export interface TracingSettings {
  enabled: boolean;
  /** OTLP/HTTP (protobuf) traces URL, e.g. `http://collector:4318/v1/traces`. */
  url: string;
  /** Share of new traces (no valid parent) that are sampled, 0..1. */
  ratio: number;
  /** Follow the parent's sampled flag when the client sent a valid traceparent. */
  parentBased: boolean;
  serviceName: string;
  /** Extra resource attributes (OTEL_RESOURCE_ATTRIBUTES). */
  resourceAttributes: Record<string, string>;
  /** Spans held in a worker (queued or being exported); more are dropped and counted. */
  maxQueueSize: number;
  maxExportBatchSize: number;
  scheduledDelayMs: number;
  exportTimeoutMs: number;
}

export const TRACING_OFF: TracingSettings = {
  enabled: false,
  url: '',
  ratio: 1,
  parentBased: true,
  serviceName: 'edgegate',
  resourceAttributes: {},
  maxQueueSize: 2048,
  maxExportBatchSize: 512,
  scheduledDelayMs: 1000,
  exportTimeoutMs: 10_000,
};

export interface TracingFlags {
  /** Like OTEL_EXPORTER_OTLP_ENDPOINT: the base URL, `/v1/traces` is appended. */
  otlpEndpoint?: string;
  sampleRatio?: string;
  serviceName?: string;
  queueSize?: string;
}

function fail(what: string, message: string): never {
  throw new Error(`${what}: ${message}`);
}

function httpUrl(what: string, value: string): URL {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    fail(what, `'${value}' is not a URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    fail(what, `'${value}' must be an http or https URL`);
  return u;
}

function ratioOf(what: string, value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0 || n > 1)
    fail(what, `'${value}' must be a number from 0 to 1`);
  return n;
}

/** OTEL_RESOURCE_ATTRIBUTES: `key=value,key=value`, values percent-encoded. */
export function parseResourceAttributes(
  value: string,
  what = 'OTEL_RESOURCE_ATTRIBUTES',
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of value.split(',')) {
    if (part.trim() === '') continue;
    const eq = part.indexOf('=');
    if (eq <= 0) fail(what, `'${part}' is not key=value`);
    const key = part.slice(0, eq).trim();
    let v: string;
    try {
      v = decodeURIComponent(part.slice(eq + 1).trim());
    } catch {
      fail(what, `the value of '${key}' is not valid percent-encoding`);
    }
    if (key === '' || !/^[\x21-\x7e]+$/.test(key)) fail(what, `'${key}' is not a valid attribute key`);
    out[key] = v;
  }
  return out;
}

const SAMPLERS: Record<string, { parentBased: boolean; ratio: number | 'arg' }> = {
  always_on: { parentBased: false, ratio: 1 },
  always_off: { parentBased: false, ratio: 0 },
  traceidratio: { parentBased: false, ratio: 'arg' },
  parentbased_always_on: { parentBased: true, ratio: 1 },
  parentbased_always_off: { parentBased: true, ratio: 0 },
  parentbased_traceidratio: { parentBased: true, ratio: 'arg' },
};

/** The settings from flags and environment (flags win). Throws naming the flag or variable of a bad value. */
export function resolveTracingSettings(flags: TracingFlags, env: NodeJS.ProcessEnv): TracingSettings {
  const e = (k: string): string | undefined => {
    const v = env[k]?.trim();
    return v === undefined || v === '' ? undefined : v;
  };
  const s: TracingSettings = { ...TRACING_OFF, resourceAttributes: {} };
  if (e('OTEL_SDK_DISABLED')?.toLowerCase() === 'true') return s;
  const exporter = e('OTEL_TRACES_EXPORTER')?.toLowerCase();
  if (exporter === 'none') return s;
  if (exporter !== undefined && exporter !== 'otlp')
    fail('OTEL_TRACES_EXPORTER', `'${exporter}' is not supported (otlp or none)`);
  const protocol = e('OTEL_EXPORTER_OTLP_TRACES_PROTOCOL') ?? e('OTEL_EXPORTER_OTLP_PROTOCOL');
  if (protocol !== undefined && protocol !== 'http/protobuf')
    fail('OTEL_EXPORTER_OTLP_PROTOCOL', `'${protocol}' is not supported (http/protobuf)`);

  if (flags.otlpEndpoint !== undefined && flags.otlpEndpoint !== '') {
    const u = httpUrl('--otlp-endpoint', flags.otlpEndpoint);
    s.url = `${u.href.replace(/\/+$/, '')}/v1/traces`;
  } else if (e('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT') !== undefined) {
    s.url = httpUrl('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', e('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT')!).href;
  } else if (e('OTEL_EXPORTER_OTLP_ENDPOINT') !== undefined) {
    const u = httpUrl('OTEL_EXPORTER_OTLP_ENDPOINT', e('OTEL_EXPORTER_OTLP_ENDPOINT')!);
    s.url = `${u.href.replace(/\/+$/, '')}/v1/traces`;
  }

  const samplerName = e('OTEL_TRACES_SAMPLER')?.toLowerCase();
  const sampler = samplerName === undefined ? SAMPLERS.parentbased_traceidratio! : SAMPLERS[samplerName];
  if (sampler === undefined)
    fail('OTEL_TRACES_SAMPLER', `'${samplerName}' is not supported (${Object.keys(SAMPLERS).join(', ')})`);
  s.parentBased = sampler.parentBased;
  if (sampler.ratio === 'arg') {
    const arg = e('OTEL_TRACES_SAMPLER_ARG');
    s.ratio = arg === undefined ? 1 : ratioOf('OTEL_TRACES_SAMPLER_ARG', arg);
  } else s.ratio = sampler.ratio;
  if (flags.sampleRatio !== undefined) s.ratio = ratioOf('--tracing-sample-ratio', flags.sampleRatio);

  const attrs = e('OTEL_RESOURCE_ATTRIBUTES');
  if (attrs !== undefined) s.resourceAttributes = parseResourceAttributes(attrs);
  s.serviceName =
    flags.serviceName || e('OTEL_SERVICE_NAME') || s.resourceAttributes['service.name'] || 'edgegate';

  const timeout = e('OTEL_EXPORTER_OTLP_TRACES_TIMEOUT') ?? e('OTEL_EXPORTER_OTLP_TIMEOUT');
  if (timeout !== undefined) {
    const n = Number(timeout);
    if (!Number.isInteger(n) || n < 1 || n > 600_000)
      fail('OTEL_EXPORTER_OTLP_TIMEOUT', `'${timeout}' must be milliseconds from 1 to 600000`);
    s.exportTimeoutMs = n;
  }
  const delay = e('OTEL_BSP_SCHEDULE_DELAY');
  if (delay !== undefined) {
    const n = Number(delay);
    if (!Number.isInteger(n) || n < 1 || n > 3_600_000)
      fail('OTEL_BSP_SCHEDULE_DELAY', `'${delay}' must be milliseconds from 1 to 3600000`);
    s.scheduledDelayMs = n;
  }
  const batch = e('OTEL_BSP_MAX_EXPORT_BATCH_SIZE');
  if (batch !== undefined) {
    const n = Number(batch);
    if (!Number.isInteger(n) || n < 1 || n > 1_000_000)
      fail('OTEL_BSP_MAX_EXPORT_BATCH_SIZE', `'${batch}' must be an integer from 1 to 1000000`);
    s.maxExportBatchSize = n;
  }
  if (flags.queueSize !== undefined) {
    const n = Number(flags.queueSize);
    if (!Number.isInteger(n) || n < 1 || n > 1_000_000)
      fail('--tracing-queue-size', `'${flags.queueSize}' must be an integer from 1 to 1000000`);
    s.maxQueueSize = n;
  }
  s.maxExportBatchSize = Math.min(s.maxExportBatchSize, s.maxQueueSize);
  s.enabled = s.url !== '';
  return s;
}
