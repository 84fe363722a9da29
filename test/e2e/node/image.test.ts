// The images the real node runs (scripts/node-images.sh), read from their archives: the gateway image is the
// project's Dockerfile built on the stand-in base (its base layers are the stand-in's, FROM resolved locally), the
// stand-in's Node is the `node` devDependency's, of the major the Dockerfile's base names and `engines` allows, and
// the CA bundle lent to the build's RUN steps is in no layer.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../support/bins.ts';
import { buildNodeImages, type NodeImages } from '../../support/node.ts';

interface ImageConfig {
  config: { Env?: string[]; User?: string; Entrypoint?: string[]; Labels?: Record<string, string> };
  rootfs: { diff_ids: string[] };
}

interface Archive {
  config: ImageConfig;
  layers: string[];
  repoTags: string[];
}

function readArchive(path: string): Archive {
  const file = (name: string) =>
    execFileSync('tar', ['-xOf', path, name], { maxBuffer: 1 << 30, encoding: 'buffer' }) as Buffer;
  const [manifest] = JSON.parse(file('manifest.json').toString('utf8')) as Array<{
    Config: string;
    Layers: string[];
    RepoTags: string[];
  }>;
  return {
    config: JSON.parse(file(manifest!.Config).toString('utf8')) as ImageConfig,
    layers: manifest!.Layers,
    repoTags: manifest!.RepoTags,
  };
}

/** The paths in one layer of a docker-archive. */
function layerPaths(archive: string, layer: string): string[] {
  const dir = execFileSync('mktemp', ['-d'], { encoding: 'utf8' }).trim();
  try {
    execFileSync('tar', ['-xf', archive, '-C', dir, layer]);
    return execFileSync('tar', ['-tf', join(dir, layer)], { encoding: 'utf8', maxBuffer: 1 << 28 }).split(
      '\n',
    );
  } finally {
    execFileSync('rm', ['-rf', dir]);
  }
}

let images: NodeImages;

beforeAll(async () => {
  images = await buildNodeImages();
}, 40 * 60_000);

describe('the real node images', () => {
  it("the stand-in base is the Dockerfile's NODE_BASE, with the node devDependency's Node and npm", () => {
    const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
      engines: { node: string };
      devDependencies: Record<string, string>;
    };
    const baseName = /^ARG NODE_BASE=(\S+)$/m.exec(dockerfile)![1]!;
    const major = /^node:(\d+)-/.exec(baseName)![1]!;
    const base = readArchive(images.base.archive);
    expect(base.repoTags).toEqual([`docker.io/library/${baseName}`]);
    const env = new Map(base.config.config.Env!.map((e) => e.split('=', 2) as [string, string]));
    expect(env.get('NODE_VERSION')).toBe(pkg.devDependencies.node);
    expect(env.get('NODE_VERSION')!.split('.')[0]).toBe(major);
    expect(pkg.engines.node).toBe(`>=${major} <${Number(major) + 1}`);
    expect(base.config.config.Labels?.['io.edgegate.stand-in']).toMatch(/^Debian bookworm minbase, Node /);
    const files = layerPaths(images.base.archive, base.layers[0]!);
    expect(files).toContain('usr/local/bin/node');
    expect(files).toContain('usr/local/lib/node_modules/npm/package.json');
  });

  it('the gateway image is built FROM the stand-in (its first layers), runs as 1000, and holds no lent CA', () => {
    const base = readArchive(images.base.archive);
    const gateway = readArchive(images.gateway.archive);
    expect(gateway.repoTags).toEqual([images.gateway.ref]);
    expect(gateway.config.rootfs.diff_ids.slice(0, base.config.rootfs.diff_ids.length)).toEqual(
      base.config.rootfs.diff_ids,
    );
    expect(gateway.config.config.User).toBe('1000:1000');
    expect(gateway.config.config.Entrypoint).toEqual(['node', 'dist/cmd/edgegate.js', 'run']);
    // The build's RUN steps had the host's CA bundle and an npmrc naming it under /usr/local/etc (a read-only
    // mount): no layer of the image has either, or any other file there.
    for (const layer of gateway.layers) {
      const paths = layerPaths(images.gateway.archive, layer);
      expect(paths.filter((p) => /^usr\/local\/etc\/./.test(p) || /ca\.pem|npmrc$/.test(p))).toEqual([]);
    }
  });
});
