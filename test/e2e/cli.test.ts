/** The CLI as users run it: validate, routes, --version, --help, bad flags. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { CLI, ROOT } from '../support/gateway.ts';

const run = promisify(execFile);

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { cwd: ROOT });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('edgegate validate', () => {
  it('prints one line per error with file:line, route and field path, and exits 1', async () => {
    const r = await cli('validate', 'test/fixtures/broken');
    expect(r.code).toBe(1);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toEqual([
      'test/fixtures/broken/bad-regex.yaml:7: shop/bad-regex: spec.rules[0].matches[0].path.value: invalid regular expression: //orders/(/: Unterminated group',
      'test/fixtures/broken/weights.yaml:16: shop/duplicate-hostnames: spec.hostnames[2]: duplicate hostname shop.example.com (also at hostnames[0])',
      'test/fixtures/broken/missing-backends.yaml:7: shop/missing-backends: spec.rules[0].backends: at least one backend is required',
      'test/fixtures/broken/unknown-field.yaml:9: shop/unknown-field: spec.rules[0].backend: unknown field',
      'test/fixtures/broken/weights.yaml:10: shop/weight-out-of-range: spec.rules[0].backends[1].weight: -5 is out of range 0..1000000',
      '5 error(s) in 5 of 5 route(s)',
    ]);
  });

  it('exits 0 with a summary for valid files, including the examples', async () => {
    const r = await cli('validate', 'test/fixtures/valid-routes.yaml', 'examples/routes');
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe('3 route(s) valid in 2 path(s)');
  });

  it('reports YAML syntax errors with file and line', async () => {
    const r = await cli('validate', 'test/fixtures/syntax-error.yaml');
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^test\/fixtures\/syntax-error\.yaml:4: /);
  });

  it('names a missing file', async () => {
    const r = await cli('validate', 'no/such/file.yaml');
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('no/such/file.yaml: no such file or directory');
  });
});

describe('edgegate routes', () => {
  it('prints the compiled table of the examples, human-readable and as JSON', async () => {
    const text = await cli('routes', '--routes', 'examples/routes', '--catalog', 'examples/catalog.yaml');
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('host api.example.com');
    expect(text.stdout).toContain(
      '90% consul:billing@dc1[v1] (1 endpoint) + 10% consul:billing@dc1[v2] (1 endpoint)',
    );
    expect(text.stdout).toContain('catalog /{datacenter}/{service}/… — dc1: billing echo; dc2: echo');
    const json = await cli(
      'routes',
      '--routes',
      'examples/routes',
      '--catalog',
      'examples/catalog.yaml',
      '--json',
    );
    const parsed = JSON.parse(json.stdout) as {
      table: { entries: unknown[] };
      statuses: { accepted: boolean }[];
    };
    expect(parsed.table.entries).toHaveLength(4);
    expect(parsed.statuses.every((s) => s.accepted)).toBe(true);
  });
});

describe('edgegate run flags', () => {
  it('prints the version and help', async () => {
    const v = await cli('--version');
    expect(v.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    const h = await cli('run', '--help');
    for (const flag of ['--listen', '--admin', '--routes', '--catalog', '--state-dir', '--log-level'])
      expect(h.stdout).toContain(flag);
  });

  it('rejects a bad listen address with a message naming the flag', async () => {
    const r = await cli('run', '--routes', 'examples/routes', '--listen', 'nonsense:port');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--listen: invalid address "nonsense:port"');
  });
});
