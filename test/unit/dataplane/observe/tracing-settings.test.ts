/** Tracing settings from flags and the OTEL_* environment: off by default, precedence, and bad values refused by name. */
import { describe, expect, it } from 'vitest';
import {
  parseResourceAttributes,
  resolveTracingSettings,
} from '../../../../src/dataplane/observe/tracing-settings.ts';

describe('resolveTracingSettings', () => {
  it('is off without an endpoint, whatever else is set', () => {
    const s = resolveTracingSettings({ sampleRatio: '0.5' }, { OTEL_SERVICE_NAME: 'x' });
    expect(s.enabled).toBe(false);
  });

  it('appends /v1/traces to the base endpoint (flag or OTEL_EXPORTER_OTLP_ENDPOINT) and takes the traces one as is', () => {
    expect(resolveTracingSettings({ otlpEndpoint: 'http://c:4318/' }, {}).url).toBe(
      'http://c:4318/v1/traces',
    );
    expect(resolveTracingSettings({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }).url).toBe(
      'http://c:4318/v1/traces',
    );
    const s = resolveTracingSettings(
      {},
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:1', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://b:2/custom' },
    );
    expect(s).toMatchObject({ enabled: true, url: 'http://b:2/custom' });
    // The flag wins over both.
    expect(
      resolveTracingSettings(
        { otlpEndpoint: 'http://f:3' },
        { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://b:2' },
      ).url,
    ).toBe('http://f:3/v1/traces');
  });

  it('defaults to parent-based ratio 1, reads OTEL_TRACES_SAMPLER(_ARG), and the flag ratio wins', () => {
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' };
    expect(resolveTracingSettings({}, env)).toMatchObject({ parentBased: true, ratio: 1 });
    expect(
      resolveTracingSettings(
        {},
        { ...env, OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.25' },
      ),
    ).toMatchObject({ parentBased: false, ratio: 0.25 });
    expect(
      resolveTracingSettings({}, { ...env, OTEL_TRACES_SAMPLER: 'parentbased_always_off' }),
    ).toMatchObject({
      parentBased: true,
      ratio: 0,
    });
    expect(
      resolveTracingSettings({ sampleRatio: '0.01' }, { ...env, OTEL_TRACES_SAMPLER_ARG: '0.5' }).ratio,
    ).toBe(0.01);
  });

  it('is turned off by OTEL_SDK_DISABLED=true and OTEL_TRACES_EXPORTER=none', () => {
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' };
    expect(resolveTracingSettings({}, { ...env, OTEL_SDK_DISABLED: 'true' }).enabled).toBe(false);
    expect(resolveTracingSettings({}, { ...env, OTEL_TRACES_EXPORTER: 'none' }).enabled).toBe(false);
  });

  it('takes the service name from the flag, OTEL_SERVICE_NAME, then OTEL_RESOURCE_ATTRIBUTES', () => {
    const env = {
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318',
      OTEL_RESOURCE_ATTRIBUTES: 'service.name=from-attrs,deployment.environment.name=prod%2Ceu',
    };
    const s = resolveTracingSettings({}, env);
    expect(s.serviceName).toBe('from-attrs');
    expect(s.resourceAttributes['deployment.environment.name']).toBe('prod,eu');
    expect(resolveTracingSettings({}, { ...env, OTEL_SERVICE_NAME: 'env' }).serviceName).toBe('env');
    expect(
      resolveTracingSettings({ serviceName: 'flag' }, { ...env, OTEL_SERVICE_NAME: 'env' }).serviceName,
    ).toBe('flag');
  });

  it.each([
    [{ otlpEndpoint: 'collector:4318' }, {}, '--otlp-endpoint'],
    [{ otlpEndpoint: 'ftp://c/' }, {}, '--otlp-endpoint'],
    [{}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'not a url' }, 'OTEL_EXPORTER_OTLP_ENDPOINT'],
    [{ otlpEndpoint: 'http://c' }, { OTEL_TRACES_SAMPLER: 'jaeger_remote' }, 'OTEL_TRACES_SAMPLER'],
    [{ otlpEndpoint: 'http://c' }, { OTEL_TRACES_SAMPLER_ARG: '1.5' }, 'OTEL_TRACES_SAMPLER_ARG'],
    [{ otlpEndpoint: 'http://c' }, { OTEL_TRACES_SAMPLER_ARG: 'half' }, 'OTEL_TRACES_SAMPLER_ARG'],
    [{ otlpEndpoint: 'http://c', sampleRatio: '-0.1' }, {}, '--tracing-sample-ratio'],
    [{ otlpEndpoint: 'http://c', sampleRatio: 'NaN' }, {}, '--tracing-sample-ratio'],
    [{ otlpEndpoint: 'http://c', queueSize: '0' }, {}, '--tracing-queue-size'],
    [{ otlpEndpoint: 'http://c', queueSize: '1.5' }, {}, '--tracing-queue-size'],
    [{ otlpEndpoint: 'http://c' }, { OTEL_TRACES_EXPORTER: 'zipkin' }, 'OTEL_TRACES_EXPORTER'],
    [{ otlpEndpoint: 'http://c' }, { OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }, 'OTEL_EXPORTER_OTLP_PROTOCOL'],
    [{ otlpEndpoint: 'http://c' }, { OTEL_RESOURCE_ATTRIBUTES: 'novalue' }, 'OTEL_RESOURCE_ATTRIBUTES'],
    [{ otlpEndpoint: 'http://c' }, { OTEL_BSP_SCHEDULE_DELAY: '1s' }, 'OTEL_BSP_SCHEDULE_DELAY'],
    [{ otlpEndpoint: 'http://c' }, { OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '0' }, 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE'],
    [{ otlpEndpoint: 'http://c' }, { OTEL_EXPORTER_OTLP_TIMEOUT: '-5' }, 'OTEL_EXPORTER_OTLP_TIMEOUT'],
    [{ otlpEndpoint: 'http://c' }, { OTEL_RESOURCE_ATTRIBUTES: 'k=%zz' }, 'OTEL_RESOURCE_ATTRIBUTES'],
  ])('refuses %o %o naming %s', (flags, env, name) => {
    expect(() => resolveTracingSettings(flags, env as NodeJS.ProcessEnv)).toThrow(name);
  });
});

describe('batch settings', () => {
  it('reads OTEL_BSP_SCHEDULE_DELAY, OTEL_BSP_MAX_EXPORT_BATCH_SIZE and OTEL_EXPORTER_OTLP_TIMEOUT; a batch never exceeds the queue', () => {
    const s = resolveTracingSettings(
      { otlpEndpoint: 'http://c', queueSize: '100' },
      {
        OTEL_BSP_SCHEDULE_DELAY: '250',
        OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '1000',
        OTEL_EXPORTER_OTLP_TIMEOUT: '3000',
      },
    );
    expect(s).toMatchObject({
      scheduledDelayMs: 250,
      maxExportBatchSize: 100,
      maxQueueSize: 100,
      exportTimeoutMs: 3000,
    });
  });
});

describe('parseResourceAttributes', () => {
  it('reads key=value pairs, percent-decoded, skipping empty parts', () => {
    expect(parseResourceAttributes('a=1, b = x%20y ,,c=')).toEqual({ a: '1', b: 'x y', c: '' });
  });
});
