/** `edgegate migrate` as users run it: Ingress YAML in (file or stdin), GatewayRoute YAML out, that validates. */
import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { formatPath, validateRoute } from '../../src/api/validate.ts';
import { routePolicyErrors } from '../../src/compile/policies.ts';
import { CLI, ROOT } from '../support/gateway.ts';

const run = promisify(execFile);
const FIXTURE = 'test/fixtures/ingress/ingress-nginx.yaml';

function routesOf(stdout: string): { metadata: { name: string }; spec: Record<string, unknown> }[] {
  return parseAllDocuments(stdout)
    .map((d) => d.toJS())
    .filter((d) => d && d.kind === 'GatewayRoute');
}

function problems(doc: unknown): string[] {
  const v = validateRoute(doc);
  const errors = v.ok ? routePolicyErrors(v.route.spec) : v.errors;
  return errors.map((e) => `${formatPath(e.path)}: ${e.message}`);
}

describe('edgegate migrate', () => {
  it('prints GatewayRoutes that validate, with a comment line for every annotation not carried over', async () => {
    const { stdout, stderr } = await run(process.execPath, [CLI, 'migrate', FIXTURE], { cwd: ROOT });
    const routes = routesOf(stdout);
    expect(routes.map((r) => r.metadata.name)).toEqual([
      'shop.shop.example.com',
      'legacy-app.app.example.com',
      'legacy-app.default-backend',
    ]);
    for (const r of routes) expect(problems(r), r.metadata.name).toEqual([]);
    const comments = stdout.split('\n').filter((l) => l.startsWith('# NOT CARRIED OVER'));
    expect(comments.map((l) => /nginx\.ingress\.kubernetes\.io\/[a-z-]+/.exec(l)?.[0])).toEqual([
      'nginx.ingress.kubernetes.io/proxy-buffering',
      'nginx.ingress.kubernetes.io/server-snippet',
    ]);
    expect(stdout).toContain('# REFUSED: the edgegate Ingress source would not serve this Ingress');
    // The canary joined the main path: a header rule and the weighted split.
    const shop = routes[0]!.spec as {
      rules: { backends: { service: { name: string }; weight?: number }[] }[];
    };
    expect(shop.rules.at(-1)!.backends.map((b) => [b.service.name, b.weight])).toEqual([
      ['api', 90],
      ['api-v2', 10],
    ]);
    expect(stderr).toContain('3 Ingress(es) → 3 GatewayRoute(s); 2 annotation(s) not carried over');
    // enable-cors is carried over: a CORS filter with ingress-nginx's defaults.
    const shopRules = (routes[0]!.spec as { rules: { filters?: { type: string }[] }[] }).rules;
    expect(shopRules.every((r) => r.filters?.some((f) => f.type === 'CORS'))).toBe(true);
  });

  it('reads stdin (multi-document) and prints the same', async () => {
    const fromFile = await run(process.execPath, [CLI, 'migrate', FIXTURE], { cwd: ROOT });
    const fromStdin = await new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, [CLI, 'migrate'], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
      });
      child.once('error', reject);
      child.once('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`exit ${code}`))));
      child.stdin.end(readFileSync(`${ROOT}/${FIXTURE}`));
    });
    expect(fromStdin).toBe(fromFile.stdout);
  });

  it('reads the List that kubectl get ingress -o yaml prints', async () => {
    const list = {
      apiVersion: 'v1',
      kind: 'List',
      items: [
        {
          apiVersion: 'networking.k8s.io/v1',
          kind: 'Ingress',
          metadata: {
            name: 'web',
            namespace: 'shop',
            annotations: { 'nginx.ingress.kubernetes.io/ssl-redirect': 'false' },
          },
          spec: {
            rules: [
              {
                host: 'web.example.com',
                http: {
                  paths: [
                    {
                      path: '/',
                      pathType: 'Prefix',
                      backend: { service: { name: 'web', port: { number: 80 } } },
                    },
                  ],
                },
              },
            ],
          },
        },
      ],
    };
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, [CLI, 'migrate', '-'], {
        cwd: ROOT,
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let text = '';
      child.stdout.on('data', (d: Buffer) => {
        text += d.toString();
      });
      child.once('error', reject);
      child.once('close', (code) => (code === 0 ? resolve(text) : reject(new Error(`exit ${code}`))));
      child.stdin.end(JSON.stringify(list));
    });
    const routes = routesOf(out);
    expect(routes.map((r) => r.metadata.name)).toEqual(['web.web.example.com']);
    expect(problems(routes[0])).toEqual([]);
  });

  it('an unreadable input fails with exit 1', async () => {
    const r = await run(process.execPath, [CLI, 'migrate', 'test/fixtures/ingress/not-there.yaml'], {
      cwd: ROOT,
    }).catch((e) => e as { code: number; stdout: string });
    expect((r as { code: number }).code).toBe(1);
  });

  it('run --ingress without --kube is refused, naming the flag', async () => {
    const r = await run(process.execPath, [CLI, 'run', '--ingress', '--routes', 'examples/routes'], {
      cwd: ROOT,
    }).catch((e) => e as { code: number; stdout: string; stderr: string });
    expect((r as { code: number }).code).not.toBe(0);
    expect(`${r.stdout}${r.stderr}`).toContain('--ingress needs --kube');
  });
});
