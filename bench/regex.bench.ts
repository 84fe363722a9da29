/**
 * Route regexes (src/api/linear-regex.ts): what a match costs on ordinary patterns, and on catastrophic ones.
 *
 * 1. ordinary: ns per test of typical route patterns against typical paths, compiled three ways — as the
 *    gateway does (backtracking engine, V8 falls back to the linear engine after 1,000 backtracks), on the linear
 *    engine alone (flag `l`), and plain backtracking (what main did; the fallback flag is process-wide, so this is
 *    the same machine code as the first for patterns that never backtrack much);
 * 2. catastrophic: µs per test of `(a+)+`, `(x+x+)+y`, `(a|aa)*c`, `(.*a){12}` against inputs of 30 to 8,000
 *    characters that do not match (on a backtracking engine alone the 30-character case takes seconds and the
 *    others longer than the universe: not run).
 *   node bench/regex.bench.ts
 */
import { compileRouteRegex } from '../src/api/linear-regex.ts';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

function nsPerOp(run: () => void, iterations: number): number {
  const rounds: number[] = [];
  for (let r = 0; r < 7; r++) {
    const c0 = process.cpuUsage();
    run();
    const c = process.cpuUsage(c0);
    rounds.push(((c.user + c.system) * 1000) / iterations);
  }
  return median(rounds);
}

const patterns = ['/orders/[0-9]+', '/api/v[0-9]+/users/[^/]+', '.*\\.(png|jpg|css)', '/(en|de|fr)/.*'];
const inputs = [
  '/orders/123456',
  '/api/v2/users/bob',
  '/static/a/b/c/logo.png',
  '/de/shop/cart',
  '/nomatch/xxxxxxxxxxxxxxxx',
];
const forms: Record<string, RegExp[]> = {
  gateway: patterns.map(compileRouteRegex),
  linearOnly: patterns.map((p) => new RegExp(`^(?:${p})$`, 'l')),
  backtracking: patterns.map((p) => new RegExp(`^(?:${p})$`)),
};
const ordinary: Record<string, number> = {};
const N = 1_000_000;
for (const [name, res] of Object.entries(forms)) {
  let hits = 0;
  ordinary[name] = Math.round(
    nsPerOp(() => {
      for (let i = 0; i < N; i++) if (res[i % res.length]!.test(inputs[i % inputs.length]!)) hits++;
    }, N),
  );
  if (hits === 0) throw new Error('nothing matched');
}

const catastrophic: Record<string, Record<number, number>> = {};
for (const [pattern, make] of [
  ['(a+)+', (n: number) => `${'a'.repeat(n)}b`],
  ['(x+x+)+y', (n: number) => 'x'.repeat(n)],
  ['(a|aa)*c', (n: number) => 'a'.repeat(n)],
  ['(.*a){12}', (n: number) => `${'a'.repeat(11)}${'b'.repeat(n)}`],
] as const) {
  const re = compileRouteRegex(pattern);
  catastrophic[pattern] = {};
  for (const n of [30, 1000, 8000]) {
    const input = make(n);
    const iterations = n >= 8000 ? 20 : 200;
    if (re.test(input)) throw new Error(`${pattern} matched`);
    catastrophic[pattern]![n] = Math.round(
      nsPerOp(() => {
        for (let i = 0; i < iterations; i++) re.test(input);
      }, iterations) / 1000,
    );
  }
}

console.log(JSON.stringify({ ordinaryNsPerTest: ordinary, catastrophicUsPerTest: catastrophic }));
