/**
 * `npm run gen:crd`: writes crds/gatewayroutes.edgegate.io.yaml from the one schema (src/api/gateway-route.ts).
 * `--check` exits 1 when the committed file is out of date.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { gatewayRouteCrdYaml } from '../src/api/crd.ts';

const target = new URL('../crds/gatewayroutes.edgegate.io.yaml', import.meta.url);
const text = gatewayRouteCrdYaml();
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
