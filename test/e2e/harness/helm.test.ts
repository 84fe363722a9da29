// The built helm runs, and installs a chart into the shared API server.
import { describe, expect, it } from 'vitest';
import { pinnedVersions, REPO_ROOT } from '../../support/bins.ts';
import { helm } from '../../support/helm.ts';
import { kubeLogs, printLogsOnFailure } from '../../support/logs.ts';
import { sharedKube } from '../../support/shared.ts';

const kube = sharedKube();
printLogsOnFailure(() => kubeLogs(kube));

describe('helm', () => {
  it('helm version runs and is the pinned version', async () => {
    const res = await helm(['version', '--short']);
    expect(res.stdout.trim()).toMatch(new RegExp(`^${pinnedVersions().helm.replace(/\./g, '\\.')}(\\+|$)`));
  });

  it('installs a chart into the API server', async () => {
    const chart = `${REPO_ROOT}/test/fixtures/harness-chart`;
    await helm(['install', 'harness', chart, '--namespace', 'harness-helm', '--create-namespace', '--wait'], {
      kubeconfig: kube.kubeconfigPath,
    });
    const cm = await kube.kubectl([
      'get',
      'configmap',
      'harness-greeting',
      '-n',
      'harness-helm',
      '-o',
      'json',
    ]);
    expect(JSON.parse(cm.stdout).data).toEqual({ greeting: 'hello' });
    const list = await helm(['list', '-n', 'harness-helm', '-o', 'json'], {
      kubeconfig: kube.kubeconfigPath,
    });
    expect(JSON.parse(list.stdout).map((r: { name: string; status: string }) => [r.name, r.status])).toEqual([
      ['harness', 'deployed'],
    ]);
    await helm(['uninstall', 'harness', '-n', 'harness-helm', '--wait'], { kubeconfig: kube.kubeconfigPath });
  });
});
