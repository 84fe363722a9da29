// The last-known-good file holds the bytes compile serialized and hashed (no second serialization), refuses a
// file whose bytes do not match the hash in its header, and still reads the format before it.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compile } from '../../../src/compile/compile.ts';
import { LastKnownGood } from '../../../src/control/last-known-good.ts';
import { tableWire } from '../../../src/table/wire.ts';
import { makeTempDir } from '../../support/tmp.ts';

function aTable() {
  const { table } = compile({
    routes: [
      {
        raw: {
          apiVersion: 'edgegate.io/v1alpha1',
          kind: 'GatewayRoute',
          metadata: { name: 'r', namespace: 'ns' },
          spec: { rules: [{ backends: [{ consul: { service: 'echo' } }] }] },
        },
        origin: 'r.yaml:1',
      },
    ],
    catalog: { localDatacenter: 'dc1', datacenters: {} },
  });
  table.version = 7;
  return table;
}

describe('LastKnownGood', () => {
  it('saves the serialized bytes as they are and loads the same table', async () => {
    const dir = makeTempDir('eg-lkg');
    const lkg = new LastKnownGood(dir);
    const table = aTable();
    await lkg.save(table);
    const text = readFileSync(join(dir, 'table.json'), 'utf8');
    const [header, body] = [text.slice(0, text.indexOf('\n')), text.slice(text.indexOf('\n') + 1)];
    expect(JSON.parse(header)).toMatchObject({ format: 2, version: 7, hash: table.hash });
    expect(body).toBe(tableWire(table).json);
    expect(await new LastKnownGood(dir).load()).toEqual(table);
  });

  it('refuses a file whose bytes do not match its hash; reads format 1', async () => {
    const dir = makeTempDir('eg-lkg');
    const lkg = new LastKnownGood(dir);
    const table = aTable();
    await lkg.save(table);
    const file = join(dir, 'table.json');
    writeFileSync(file, readFileSync(file, 'utf8').replace('"echo"', '"ecHo"'));
    expect(await lkg.load()).toBeUndefined();
    writeFileSync(file, JSON.stringify({ format: 1, savedAt: 'x', table }));
    expect(await lkg.load()).toEqual(table);
  });

  it('coalesces saves asked for meanwhile into the newest, and goes on after a failed one', async () => {
    const parent = makeTempDir('eg-lkg');
    const dir = join(parent, 'state');
    writeFileSync(dir, ''); // a file where the directory should be: the save fails
    const lkg = new LastKnownGood(dir);
    const t = aTable();
    await expect(lkg.save(t)).rejects.toThrow();
    rmSync(dir);
    const versions = [8, 9, 10].map((v) => ({ ...t, version: v }));
    await Promise.all(versions.map((v) => lkg.save(v)));
    expect((await lkg.load())?.version).toBe(10);
  });
});
