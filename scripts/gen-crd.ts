/**
 * `npm run gen:crd`: writes crds/gatewayroutes.edgegate.io.yaml from the one schema (src/api/gateway-route.ts).
 * `--check` exits 1 when the committed file is out of date.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { consulServiceCrdYaml } from '../src/api/consul-service-crd.ts';
import { gatewayRouteCrdYaml } from '../src/api/crd.ts';

for (const [file, text] of [
  ['gatewayroutes.edgegate.io.yaml', gatewayRouteCrdYaml()],
  ['consulservices.edgegate.io.yaml', consulServiceCrdYaml()],
] as const) {
  const target = new URL(`../crds/${file}`, import.meta.url);
  if (process.argv.includes('--check')) {
    let current = '';
    try {
      current = readFileSync(target, 'utf8');
    } catch {}
    if (current !== text) {
      process.stderr.write(`${target.pathname} is out of date: run npm run gen:crd\n`);
      process.exit(1);
    }
  } else {
    writeFileSync(target, text);
    process.stdout.write(`wrote ${target.pathname}\n`);
  }
}
