// The shared kube-apiserver is real: built kubectl, CRDs with schema validation, RBAC.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { pinnedVersions, REPO_ROOT } from '../../support/bins.ts';
import { waitCrdsEstablished } from '../../support/kube.ts';
import { kubeLogs, printLogsOnFailure } from '../../support/logs.ts';
import { sharedKube } from '../../support/shared.ts';

const kube = sharedKube();
printLogsOnFailure(() => kubeLogs(kube));
const crd = readFileSync(`${REPO_ROOT}/test/fixtures/harness-crd.yaml`, 'utf8');

function widget(name: string, spec: Record<string, unknown>): string {
  return JSON.stringify({
    apiVersion: 'harness.edgegate.test/v1',
    kind: 'Widget',
    metadata: { name, namespace: 'default' },
    spec,
  });
}

async function applyCrd(): Promise<void> {
  await kube.kubectl(['apply', '-f', '-'], { input: crd });
  await waitCrdsEstablished(kube, ['widgets.harness.edgegate.test']);
}

describe('kube-apiserver + etcd (shared)', () => {
  it('runs the pinned versions: built kubectl and apiserver', async () => {
    const v = pinnedVersions().kubernetes;
    const client = await kube.kubectl(['version', '--client', '-o', 'json']);
    expect(JSON.parse(client.stdout).clientVersion.gitVersion).toBe(v);
    const server = await kube.request('GET', '/version');
    expect(server.status).toBe(200);
    expect(server.json<{ gitVersion: string }>().gitVersion).toBe(v);
    const ready = await kube.request('GET', '/readyz?verbose');
    expect(ready.body).toContain('[+]etcd ok');
  });

  it('serves a CRD applied with kubectl', async () => {
    await applyCrd();
    await kube.kubectl(['apply', '-f', '-'], { input: widget('good', { host: 'a.example', replicas: 3 }) });
    const got = await kube.kubectl(['get', 'widget', 'good', '-o', 'json']);
    expect(JSON.parse(got.stdout).spec).toEqual({ host: 'a.example', replicas: 3 });
    const list = await kube.request('GET', '/apis/harness.edgegate.test/v1/namespaces/default/widgets');
    expect(list.status).toBe(200);
    expect(
      list.json<{ items: Array<{ metadata: { name: string } }> }>().items.map((i) => i.metadata.name),
    ).toContain('good');
  });

  it('rejects an object that violates the schema, naming the field', async () => {
    await applyCrd();
    const tooMany = await kube.kubectl(['apply', '-f', '-'], {
      input: widget('bad', { host: 'a.example', replicas: 50 }),
      allowFailure: true,
    });
    expect(tooMany.code).not.toBe(0);
    expect(tooMany.stderr).toContain('spec.replicas');
    expect(tooMany.stderr).toMatch(/less than or equal to 10/);

    const missing = await kube.request('POST', '/apis/harness.edgegate.test/v1/namespaces/default/widgets', {
      body: widget('bad2', { replicas: 2 }),
    });
    expect(missing.status).toBe(422);
    expect(missing.json<{ message: string }>().message).toContain('spec.host');

    const absent = await kube.kubectl(['get', 'widget', 'bad', '--ignore-not-found', '-o', 'name']);
    expect(absent.stdout.trim()).toBe('');
  });

  it('answers 403 to a ServiceAccount token without RBAC rights, 200 once granted', async () => {
    await applyCrd();
    const token = await kube.createServiceAccountToken('harness-rbac', 'reader');
    expect(token.split('.')).toHaveLength(3); // a signed JWT from the TokenRequest API

    const path = '/apis/harness.edgegate.test/v1/namespaces/harness-rbac/widgets';
    const denied = await kube.request('GET', path, { token });
    expect(denied.status).toBe(403);
    expect(denied.json<{ message: string }>().message).toContain('system:serviceaccount:harness-rbac:reader');
    const viaKubectl = await kube.kubectl(['get', 'widgets', '-n', 'harness-rbac'], {
      token,
      allowFailure: true,
    });
    expect(viaKubectl.code).not.toBe(0);
    expect(viaKubectl.stderr).toMatch(/Forbidden/);

    // An unknown token is not authenticated at all.
    expect((await kube.request('GET', path, { token: 'not-a-token' })).status).toBe(401);

    await kube.kubectl([
      'create',
      'role',
      'widget-reader',
      '-n',
      'harness-rbac',
      '--verb=get,list',
      '--resource=widgets.harness.edgegate.test',
    ]);
    await kube.kubectl([
      'create',
      'rolebinding',
      'widget-reader',
      '-n',
      'harness-rbac',
      '--role=widget-reader',
      '--serviceaccount=harness-rbac:reader',
    ]);
    const allowed = await kube.request('GET', path, { token });
    expect(allowed.status, allowed.body).toBe(200);
  });
});
