// A private API server: restarting kube-apiserver keeps the data in etcd.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type KubeServer, startKube } from '../../support/kube.ts';
import { kubeLogs, printLogsOnFailure } from '../../support/logs.ts';

let kube: KubeServer | undefined;
printLogsOnFailure(() => kubeLogs(kube));

beforeAll(async () => {
  kube = await startKube();
}, 180_000);
afterAll(async () => {
  await kube?.stop();
});

describe('private kube-apiserver', () => {
  it('survives an API server outage with its data', async () => {
    const k = kube!;
    await k.kubectl(['create', 'configmap', 'survivor', '--from-literal=a=b']);
    await k.killApiServer();
    const during = await k.kubectl(['get', 'configmap', 'survivor', '--request-timeout=5s'], {
      allowFailure: true,
    });
    expect(during.code).not.toBe(0);
    await k.startApiServer();
    const after = await k.kubectl(['get', 'configmap', 'survivor', '-o', 'jsonpath={.data.a}']);
    expect(after.stdout).toBe('b');
  }, 180_000);
});
