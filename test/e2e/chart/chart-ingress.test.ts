/**
 * The chart with kubernetes.ingress.enabled: the IngressClass (optionally the default), the EDGEGATE_INGRESS* env,
 * the Ingress RBAC rules from files/rbac-rules.json (cluster-wide or per watched namespace) and the IngressClass
 * ClusterRole in both cases — applied to the real kube-apiserver with --dry-run=server.
 */
import { describe, expect, it } from 'vitest';
import { INGRESS_CLASS_RULES, INGRESS_RULES } from '../../../src/control/sources/kube/rbac.ts';
import { kubeLogs, printLogsOnFailure } from '../../support/logs.ts';
import { sharedKube } from '../../support/shared.ts';
import { envOf, find, gatewayContainer, type Manifest, only, render, toYamlStream } from './chart-support.ts';

const kube = sharedKube();
printLogsOnFailure(() => kubeLogs(kube));

const rulesOf = (m: Manifest) => m.rules as unknown as unknown[];

describe('chart: kubernetes.ingress', () => {
  it('off by default: no IngressClass, no Ingress rules, no env', async () => {
    const { objects } = await render('eg', 'edge', {});
    expect(find(objects, 'IngressClass')).toEqual([]);
    expect(JSON.stringify(objects)).not.toContain('ingresses');
    expect(envOf(gatewayContainer(objects)).has('EDGEGATE_INGRESS')).toBe(false);
  });

  it('on: the default IngressClass, env with the published addresses, RBAC cluster-wide', async () => {
    const ns = `eg-chart-ing-${Math.random().toString(36).slice(2, 7)}`;
    const { objects, yaml } = await render('eg', ns, {
      kubernetes: {
        ingress: { enabled: true, default: true, publishAddresses: ['192.0.2.10', 'lb.example.com'] },
      },
    });
    const cls = only(objects, 'IngressClass');
    expect(cls.metadata.name).toBe('edgegate');
    expect(cls.spec).toEqual({ controller: 'edgegate.io/ingress-controller' });
    expect((cls.metadata as { annotations?: unknown }).annotations).toEqual({
      'ingressclass.kubernetes.io/is-default-class': 'true',
    });
    const env = envOf(gatewayContainer(objects));
    expect(env.get('EDGEGATE_INGRESS')?.value).toBe('true');
    expect(env.get('EDGEGATE_INGRESS_PUBLISH_ADDRESS')?.value).toBe('192.0.2.10,lb.example.com');
    const roles = find(objects, 'ClusterRole');
    const main = roles.find((r) => r.metadata.name === 'eg-edgegate')!;
    for (const rule of INGRESS_RULES) expect(rulesOf(main)).toContainEqual(rule);
    const classes = roles.find((r) => r.metadata.name === 'eg-edgegate-ingressclasses')!;
    expect(rulesOf(classes)).toEqual(INGRESS_CLASS_RULES);
    await kube.kubectl(['create', 'namespace', ns]);
    try {
      await kube.kubectl(['apply', '--dry-run=server', '-f', '-'], { input: yaml });
    } finally {
      await kube.kubectl(['delete', 'namespace', ns, '--wait=false'], { allowFailure: true });
    }
  });

  it('with watched namespaces: Ingress rules in each Role, IngressClasses still by a ClusterRole; default publish is the node IP', async () => {
    const { objects } = await render('eg', 'edge', {
      kubernetes: { watchNamespaces: ['a', 'b'], ingress: { enabled: true } },
    });
    const roles = find(objects, 'Role').filter((r) => r.metadata.name === 'eg-edgegate');
    expect(roles.map((r) => r.metadata.namespace)).toEqual(['a', 'b']);
    for (const r of roles) for (const rule of INGRESS_RULES) expect(rulesOf(r)).toContainEqual(rule);
    expect(find(objects, 'ClusterRole').map((r) => r.metadata.name)).toEqual(['eg-edgegate-ingressclasses']);
    expect(envOf(gatewayContainer(objects)).get('EDGEGATE_INGRESS_PUBLISH_ADDRESS')?.value).toBe(
      '$(HOST_IP)',
    );
    expect(toYamlStream(objects)).toContain('kind: IngressClass');
  });
});
