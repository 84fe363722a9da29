/**
 * `npm run gen:rbac`: writes charts/edgegate/files/rbac-rules.json from src/control/sources/kube/rbac.ts (the one place
 * the controller's API rights are written). `--check` exits 1 when the committed file is out of date.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { rbacRulesJson } from '../src/control/sources/kube/rbac.ts';

const target = new URL('../charts/edgegate/files/rbac-rules.json', import.meta.url);
const text = rbacRulesJson();
if (process.argv.includes('--check')) {
  let current = '';
  try {
    current = readFileSync(target, 'utf8');
  } catch {}
  let same = false;
  try {
    same = JSON.stringify(JSON.parse(current)) === JSON.stringify(JSON.parse(text));
  } catch {}
  if (!same) {
    process.stderr.write(`${target.pathname} is out of date: run npm run gen:rbac\n`);
    process.exit(1);
  }
} else {
  writeFileSync(target, text);
  process.stdout.write(`wrote ${target.pathname}\n`);
}
