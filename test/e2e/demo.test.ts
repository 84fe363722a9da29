/**
 * `npm start`, the embedded default: the demo launcher with the examples and its echo upstreams answers the
 * README's curls. Ports are shifted so the test runs beside other servers.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../support/gateway.ts';
import { freePort } from '../support/ports.ts';
import { waitFor } from '../support/wait.ts';

let demo: ChildProcess;
let port: number;
let output = '';

beforeAll(async () => {
  port = await freePort({ udp: false });
  const admin = await freePort({ udp: false });
  // Echo ports in examples/catalog.yaml are 9001–9021; shift them to 28001–31720, below the kernel's ephemeral
  // range (32768+), where the free ports of the other tests and every outgoing connection live.
  const offset = 19000 + Math.floor(Math.random() * 3700);
  demo = spawn(process.execPath, [join(ROOT, 'scripts', 'start-demo.ts')], {
    env: {
      ...process.env,
      EDGEGATE_LISTEN: `127.0.0.1:${port}`,
      EDGEGATE_ADMIN: `127.0.0.1:${admin}`,
      EDGEGATE_DEMO_PORT_OFFSET: String(offset),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  demo.stdout!.on('data', (d) => {
    output += d;
  });
  demo.stderr!.on('data', (d) => {
    output += d;
  });
  await waitFor(async () => (await fetch(`http://127.0.0.1:${admin}/readyz`)).status === 200, {
    timeoutMs: 60_000,
    message: 'demo ready',
    diagnostics: () => output,
  });
  // The launcher starts the gateway only once every echo upstream listens; readiness is the workers' first table.
  await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/dc1/echo/hello`)).status === 200, {
    timeoutMs: 10_000,
  });
});

afterAll(async () => {
  if (demo && demo.exitCode === null) {
    demo.kill('SIGTERM');
    await once(demo, 'exit');
  }
});

/** GET with a Host header of our choice (fetch does not let a caller set Host). */
function getJson(path: string, host: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path, headers: { host } }, (res) => {
      let text = '';
      res.on('data', (d) => {
        text += d;
      });
      res.on('end', () => resolve(JSON.parse(text)));
    })
      .on('error', reject)
      .end();
  });
}

describe('npm start demo', () => {
  it('serves /dc1/echo/hello from the dc1 echo upstream', async () => {
    const r = await fetch(`http://127.0.0.1:${port}/dc1/echo/hello`);
    expect(r.status).toBe(200);
    expect(await r.json()).toMatchObject({ name: 'echo-dc1-1', path: '/hello' });
  });

  it('serves /dc2/echo/x from dc2', async () => {
    const r = await fetch(`http://127.0.0.1:${port}/dc2/echo/x`);
    expect(await r.json()).toMatchObject({ name: 'echo-dc2-1', path: '/x' });
  });

  it('answers an unknown service with the 404 JSON body', async () => {
    const r = await fetch(`http://127.0.0.1:${port}/dc1/nope/x`);
    expect(r.status).toBe(404);
    expect(await r.json()).toMatchObject({
      error: 'EDGEGATE_CATALOG_UNKNOWN_SERVICE',
      requestId: expect.any(String),
    });
  });

  it('splits api.example.com/billing 90/10 and rewrites the prefix', async () => {
    const counts: Record<string, number> = {};
    for (let i = 0; i < 100; i++) {
      const body = (await getJson('/billing/invoices', 'api.example.com')) as { name: string; path: string };
      expect(body.path).toBe('/invoices');
      counts[body.name] = (counts[body.name] ?? 0) + 1;
    }
    expect(counts).toEqual({ 'billing-dc1-1': 90, 'billing-dc1-2': 10 });
  });

  it('stops with its upstreams on SIGTERM', async () => {
    demo.kill('SIGTERM');
    const [code] = await once(demo, 'exit');
    expect(code).toBe(0);
    await expect(fetch(`http://127.0.0.1:${port}/dc1/echo/hello`)).rejects.toThrow();
  });
});

describe('npm start demo with a taken echo port', () => {
  it('exits 1 naming the upstream and its port, and leaves no echo upstream behind', async () => {
    const offset = 19000 + Math.floor(Math.random() * 3700);
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen({ host: '127.0.0.1', port: 9003 + offset }, resolve));
    try {
      const child = spawn(process.execPath, [join(ROOT, 'scripts', 'start-demo.ts')], {
        env: { ...process.env, EDGEGATE_DEMO_PORT_OFFSET: String(offset) },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let err = '';
      child.stderr!.on('data', (d) => {
        err += d;
      });
      const [code] = await once(child, 'exit');
      expect(code).toBe(1);
      expect(err).toContain(`edgegate demo: echo upstream echo-dc2-1 on 127.0.0.1:${9003 + offset} exited`);
      // The upstreams that did start were stopped with it.
      await waitFor(
        async () => {
          try {
            await fetch(`http://127.0.0.1:${9001 + offset}/`);
            return false;
          } catch {
            return true;
          }
        },
        { timeoutMs: 10_000, message: 'echo-dc1-1 stopped' },
      );
    } finally {
      taken.close();
    }
  });
});
