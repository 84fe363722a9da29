/**
 * Standalone hot reload: editing, adding and deleting route files and editing the catalog change what is served
 * without a restart; a file that fails to parse keeps the previous good state and is logged with file and line;
 * a request in flight during a reload completes.
 */
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type EchoUpstream,
  type GatewayProcess,
  routeYaml,
  startEcho,
  startGateway,
} from '../support/gateway.ts';
import { waitFor } from '../support/wait.ts';

let a: EchoUpstream;
let b: EchoUpstream;
let gw: GatewayProcess;
let dir: string;
let catalogDir: string;
const reloadTimes: number[] = [];

const catalogWith = (ports: Record<string, number[]>) =>
  JSON.stringify({
    datacenters: {
      dc1: {
        services: Object.fromEntries(
          Object.entries(ports).map(([s, list]) => [s, list.map((port) => ({ address: '127.0.0.1', port }))]),
        ),
      },
    },
  });

const rule = (path: string, service: string) => ({
  matches: [{ path: { value: path } }],
  backends: [{ consul: { service } }],
});

async function answer(path: string): Promise<{ status: number; name?: string; error?: string }> {
  const r = await fetch(`${gw.url}${path}`);
  const body = (await r.json()) as { name?: string; error?: string };
  return { status: r.status, name: body.name, error: body.error };
}

/** Writes a file, then waits until `check` holds; records how long that took. */
async function changeAndWait(file: string, text: string, check: () => Promise<boolean>): Promise<void> {
  const started = performance.now();
  writeFileSync(file === 'catalog.yaml' ? join(catalogDir, file) : join(dir, file), text);
  await waitFor(check, {
    timeoutMs: 10_000,
    intervalMs: 10,
    message: `reload after writing ${file}`,
    diagnostics: () => gw.output(),
  });
  reloadTimes.push(performance.now() - started);
}

beforeAll(async () => {
  a = await startEcho('a');
  b = await startEcho('b');
  dir = mkdtempSync(join(tmpdir(), 'eg-reload-'));
  catalogDir = mkdtempSync(join(tmpdir(), 'eg-reload-catalog-'));
  writeFileSync(join(catalogDir, 'catalog.yaml'), catalogWith({ svc: [a.port], other: [b.port] }));
  writeFileSync(join(dir, 'one.yaml'), routeYaml('one', { rules: [rule('/one', 'svc')] }));
  gw = await startGateway(['--routes', dir, '--catalog', join(catalogDir, 'catalog.yaml')]);
});

afterAll(async () => {
  await gw?.stop();
  await a?.close();
  await b?.close();
  rmSync(dir, { recursive: true, force: true });
  rmSync(catalogDir, { recursive: true, force: true });
  if (reloadTimes.length) {
    const sorted = [...reloadTimes].sort((x, y) => x - y);
    console.log(
      `file change → served: ${sorted.map((t) => t.toFixed(0)).join(', ')} ms (max ${sorted.at(-1)!.toFixed(0)} ms)`,
    );
  }
});

describe('hot reload from files', () => {
  it('serves an edited route file', async () => {
    expect((await answer('/one/x')).name).toBe('a');
    await changeAndWait(
      'one.yaml',
      routeYaml('one', { rules: [rule('/one', 'other')] }),
      async () => (await answer('/one/x')).name === 'b',
    );
  });

  it('serves an added file and forgets a deleted one', async () => {
    await changeAndWait(
      'two.yaml',
      routeYaml('two', { rules: [rule('/two', 'svc')] }),
      async () => (await answer('/two/x')).name === 'a',
    );
    const started = performance.now();
    rmSync(join(dir, 'two.yaml'));
    await waitFor(async () => (await answer('/two/x')).status === 404, { timeoutMs: 10_000, intervalMs: 10 });
    reloadTimes.push(performance.now() - started);
  });

  it('follows files replaced by rename (as editors and config tools do), again and again, and new subdirectories', async () => {
    for (const service of ['other', 'svc', 'other', 'svc']) {
      const started = performance.now();
      writeFileSync(join(dir, '.one.yaml.tmp'), routeYaml('one', { rules: [rule('/one', service)] }));
      renameSync(join(dir, '.one.yaml.tmp'), join(dir, 'one.yaml'));
      const want = service === 'svc' ? 'a' : 'b';
      await waitFor(async () => (await answer('/one/x')).name === want, {
        timeoutMs: 10_000,
        intervalMs: 10,
        message: `rename → ${service}`,
      });
      reloadTimes.push(performance.now() - started);
    }
    mkdirSync(join(dir, 'team', 'nested'), { recursive: true });
    await changeAndWait(
      join('team', 'nested', 'three.yaml'),
      routeYaml('three', { rules: [rule('/three', 'other')] }),
      async () => (await answer('/three/x')).name === 'b',
    );
    await changeAndWait(
      join('team', 'nested', 'three.yaml'),
      routeYaml('three', { rules: [rule('/three', 'svc')] }),
      async () => (await answer('/three/x')).name === 'a',
    );
    rmSync(join(dir, 'team'), { recursive: true });
    await waitFor(async () => (await answer('/three/x')).status === 404, {
      timeoutMs: 10_000,
      intervalMs: 10,
    });
  });

  it('follows catalog edits', async () => {
    await changeAndWait(
      'catalog.yaml',
      catalogWith({ svc: [b.port], other: [b.port] }),
      async () => (await answer('/two-less')).status === 404 && (await answer('/one/x')).name === 'b',
    );
    await changeAndWait(
      'catalog.yaml',
      catalogWith({ svc: [a.port], other: [a.port] }),
      async () => (await answer('/one/x')).name === 'a',
    );
  });

  it('keeps the previous good state of a file that fails to parse, logging file and line', async () => {
    writeFileSync(
      join(dir, 'one.yaml'),
      'apiVersion: edgegate.io/v1alpha1\nkind: GatewayRoute\nmetadata: { name: [\n',
    );
    await waitFor(() => gw.output().includes('keeping the previous routes of'), {
      timeoutMs: 10_000,
      intervalMs: 10,
    });
    expect(gw.output()).toMatch(/one\.yaml:\d+: /);
    expect((await answer('/one/x')).name).toBe('a');
    // An invalid (but parseable) route is skipped and reported; the others keep serving.
    writeFileSync(
      join(dir, 'bad.yaml'),
      routeYaml('bad', { rules: [{ matches: [{ path: { type: 'Regex', value: '/' } }], backends: [] }] }),
    );
    await waitFor(() => gw.output().includes('route default/bad is invalid and skipped'), {
      timeoutMs: 10_000,
      intervalMs: 10,
    });
    expect(gw.output()).toContain('spec.rules[0].matches[0].path.type');
    expect((await answer('/one/x')).name).toBe('a');
  });

  it('keeps the previous catalog when the catalog file breaks, and when it is deleted', async () => {
    const file = join(catalogDir, 'catalog.yaml');
    expect((await answer('/one/x')).name).toBe('a');
    writeFileSync(file, 'datacenters:\n  dc1: { services: [\n');
    await waitFor(() => gw.output().includes('keeping the previous catalog'), {
      timeoutMs: 10_000,
      intervalMs: 10,
    });
    expect((await answer('/one/x')).name).toBe('a');
    // Parseable but wrong: a port out of range is refused with its field, the previous catalog stays.
    const marker = gw.output().length;
    writeFileSync(file, catalogWith({ svc: [70000] }));
    await waitFor(() => gw.output().slice(marker).includes('keeping the previous catalog'), {
      timeoutMs: 10_000,
      intervalMs: 10,
    });
    expect((await answer('/one/x')).name).toBe('a');
    const marker2 = gw.output().length;
    rmSync(file);
    await waitFor(() => gw.output().slice(marker2).includes('keeping the previous catalog'), {
      timeoutMs: 10_000,
      intervalMs: 10,
    });
    expect((await answer('/one/x')).name).toBe('a');
    // Back: the file returns and is followed again.
    await changeAndWait(
      'catalog.yaml',
      catalogWith({ svc: [b.port], other: [b.port] }),
      async () => (await answer('/one/x')).name === 'b',
    );
    await changeAndWait(
      'catalog.yaml',
      catalogWith({ svc: [a.port], other: [a.port] }),
      async () => (await answer('/one/x')).name === 'a',
    );
  });

  it('lets a request in flight finish across a reload', async () => {
    writeFileSync(join(catalogDir, 'catalog.yaml'), catalogWith({ svc: [a.port], other: [b.port] }));
    writeFileSync(join(dir, 'one.yaml'), routeYaml('one', { rules: [rule('/one', 'svc')] }));
    // A probe route written after both files proves both edits are live (a reload reads every file).
    writeFileSync(join(dir, 'probe.yaml'), routeYaml('probe', { rules: [rule('/probe', 'other')] }));
    await waitFor(async () => (await answer('/probe')).name === 'b', {
      timeoutMs: 10_000,
      intervalMs: 10,
      diagnostics: () => gw.output(),
    });
    const slow = fetch(`${gw.url}/one/slow?delay=600`).then(async (r) => ({
      status: r.status,
      body: (await r.json()) as { name: string },
    }));
    await changeAndWait(
      'one.yaml',
      routeYaml('one', { rules: [rule('/one', 'other')] }),
      async () => (await answer('/one/x')).name === 'b',
    );
    const done = await slow;
    expect(done.status).toBe(200);
    expect(done.body.name).toBe('a');
  });
});
