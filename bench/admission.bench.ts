/**
 * Micro-benchmark of request admission (src/dataplane/proxy/admission.ts), the checks every request passes before routing:
 * ns per call for typical requests — a browser-like HTTP/1.1 GET (10 headers), a small API POST (6 headers), an
 * HTTP/2 GET with its 4 pseudo-header fields (9 fields) — and for the refusal paths. Median of 7 rounds of
 * 1,000,000 calls, wall-clock and CPU time (process.cpuUsage; on a shared machine wall time includes the time the
 * process was not scheduled).
 *   node bench/admission.bench.ts
 */
import { type AdmissionSettings, admit } from '../src/dataplane/proxy/admission.ts';

const S: AdmissionSettings = {
  rejectUnderscoreHeaders: true,
  rejectAuthorityMismatch: true,
  rejectControlCharacters: true,
  maxHeaders: 100,
};

const browser = [
  'Host',
  'shop.example.com',
  'User-Agent',
  'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0',
  'Accept',
  'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8',
  'Accept-Language',
  'en-US,en;q=0.5',
  'Accept-Encoding',
  'gzip, deflate, br',
  'Connection',
  'keep-alive',
  'Cookie',
  'session=4f0c1f6e0d2b4c8e9a7b6c5d4e3f2a1b; theme=dark',
  'Upgrade-Insecure-Requests',
  '1',
  'Sec-Fetch-Dest',
  'document',
  'Sec-Fetch-Mode',
  'navigate',
];
const api = [
  'host',
  'api.example.com:8443',
  'content-type',
  'application/json',
  'content-length',
  '42',
  'authorization',
  'Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl',
  'x-request-id',
  '5b1d99aa-d935-4cf0-af15-08d2e54431c4',
  'accept',
  '*/*',
];
const h2 = [
  ':method',
  'GET',
  ':path',
  '/shop/orders/v2/small',
  ':scheme',
  'https',
  ':authority',
  'shop.example.com',
  'user-agent',
  'h2load nghttp2/1.52.0',
  'accept',
  '*/*',
  'accept-encoding',
  'gzip',
  'cookie',
  'a=1',
  'cookie',
  'b=2',
];

const cases: [string, () => unknown][] = [
  ['h1 GET, 10 headers', () => admit('GET', '/shop/orders/v2/small?x=1', '1.1', browser, false, S)],
  ['h1 POST, 6 headers', () => admit('POST', '/v1/orders', '1.1', api, false, S)],
  ['h2 GET, 9 fields', () => admit('GET', '/shop/orders/v2/small', '2.0', h2, true, S)],
  ['refused: fragment', () => admit('GET', '/a#b', '1.1', browser, false, S)],
  ['refused: lower-case method', () => admit('delete', '/a', '2.0', h2, true, S)],
];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const iterations = 1_000_000;
let sink = 0;
for (const [name, run] of cases) {
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let round = 0; round < 7; round++) {
    const c0 = process.cpuUsage();
    const start = process.hrtime.bigint();
    for (let k = 0; k < iterations; k++) if (run() !== undefined) sink++;
    wall.push(Number(process.hrtime.bigint() - start) / iterations);
    const c = process.cpuUsage(c0);
    cpu.push(((c.user + c.system) * 1000) / iterations);
  }
  console.log(
    JSON.stringify({ case: name, nsMedian: Math.round(median(wall)), cpuNsMedian: Math.round(median(cpu)) }),
  );
}
if (sink < 0) console.log(sink);
