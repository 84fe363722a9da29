/**
 * The chart's tracing values: off by default (no OTEL_* variable at all), the OTEL_* conventions the gateway reads
 * when enabled (endpoint, parent-based ratio sampler, service name, resource attributes with the pod's identity),
 * and bad values refused by name. Real helm, no server; the rendered variables are then read by the gateway's own
 * settings resolver, so the chart and the gateway agree on their meaning.
 */
import { describe, expect, it } from 'vitest';
import { resolveTracingSettings } from '../../../src/dataplane/observe/tracing-settings.ts';
import { envOf, gatewayContainer, type Manifest, render, template } from './chart-support.ts';

function plainEnv(env: Map<string, Manifest>): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [name, e] of env) if (typeof e.value === 'string') out[name] = e.value;
  return out;
}

describe('chart tracing values', () => {
  it('sets no OTEL_* variable by default (tracing off)', async () => {
    const { objects } = await render('t0', 'edge', {});
    const env = envOf(gatewayContainer(objects));
    expect([...env.keys()].filter((k) => k.startsWith('OTEL_') || k.includes('TRACING'))).toEqual([]);
    expect(resolveTracingSettings({}, plainEnv(env)).enabled).toBe(false);
  });

  it('renders the OTEL_* variables the gateway resolves to the configured settings', async () => {
    const { objects } = await render('t1', 'edge', {
      tracing: {
        enabled: true,
        endpoint: 'http://otel-collector.observability:4318',
        sampleRatio: 0.05,
        serviceName: 'edge-eu',
        resourceAttributes: { 'deployment.environment.name': 'prod' },
        queueSize: 512,
      },
    });
    const env = envOf(gatewayContainer(objects));
    expect(env.get('NODE_NAME')?.valueFrom).toEqual({ fieldRef: { fieldPath: 'spec.nodeName' } });
    expect(env.get('OTEL_RESOURCE_ATTRIBUTES')?.value).toBe(
      'k8s.pod.name=$(POD_NAME),k8s.namespace.name=$(POD_NAMESPACE),k8s.node.name=$(NODE_NAME),deployment.environment.name=prod',
    );
    // Kubernetes expands $(VAR) of variables declared earlier in the list: each must come before its use.
    const names = [...env.keys()];
    for (const v of ['POD_NAME', 'POD_NAMESPACE', 'NODE_NAME'])
      expect(names.indexOf(v)).toBeLessThan(names.indexOf('OTEL_RESOURCE_ATTRIBUTES'));
    const s = resolveTracingSettings(
      { queueSize: env.get('EDGEGATE_TRACING_QUEUE_SIZE')?.value as unknown as string },
      plainEnv(env),
    );
    expect(s).toMatchObject({
      enabled: true,
      url: 'http://otel-collector.observability:4318/v1/traces',
      parentBased: true,
      ratio: 0.05,
      serviceName: 'edge-eu',
      maxQueueSize: 512,
    });
    expect(s.resourceAttributes['deployment.environment.name']).toBe('prod');
  });

  it.each([
    ['enabled without an endpoint', { enabled: true }, 'tracing.enabled needs tracing.endpoint'],
    ['an endpoint that is no http URL', { endpoint: 'collector:4318' }, "at '/tracing/endpoint'"],
    ['a ratio above 1', { sampleRatio: 1.5 }, "at '/tracing/sampleRatio'"],
    ['a negative ratio', { sampleRatio: -0.1 }, "at '/tracing/sampleRatio'"],
    ['a queue of 0', { queueSize: 0 }, "at '/tracing/queueSize'"],
    [
      'an unknown key',
      { sampler: 'always_on' },
      "at '/tracing': additional properties 'sampler' not allowed",
    ],
    [
      'an attribute value with a comma',
      { resourceAttributes: { team: 'a,b' } },
      "at '/tracing/resourceAttributes/team'",
    ],
    // (helm's validator names the key but a wrong path for a propertyNames failure)
    ['an attribute key with =', { resourceAttributes: { 'a=b': 'x' } }, "invalid propertyName 'a=b'"],
  ])('rejects %s', async (_name, tracing, message) => {
    const r = await template('bad', 'edge', { tracing }, { allowFailure: true });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(message);
  });
});
