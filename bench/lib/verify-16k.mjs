// Fetches the 16 KiB answer over CONNS keep-alive connections for SECONDS through a gateway on 127.0.0.1:PORT and
// checks every body byte for byte (the upstream file is 16,384 bytes of "x"): run beside a wrk load to see that no answer
// comes out wrong (docs/benchmarks.md, "Issue 17, step 6").
//   node bench/lib/verify-16k.mjs PORT SECONDS CONNS
import http from 'node:http';

const [port, seconds, conns] = process.argv.slice(2).map(Number);
const agent = new http.Agent({ keepAlive: true, maxSockets: conns });
const expected = 'x'.repeat(16384);
let ok = 0,
  bad = 0,
  errors = 0;
const end = Date.now() + seconds * 1000;
async function one() {
  return new Promise((resolve) => {
    const req = http.get(
      { port, host: '127.0.0.1', path: '/shop/orders/v2/16k', headers: { host: 'shop.example.com' }, agent },
      (res) => {
        const parts = [];
        res.on('data', (d) => parts.push(d));
        res.on('end', () => {
          const body = Buffer.concat(parts).toString('latin1');
          if (res.statusCode === 200 && body === expected) ok++;
          else {
            bad++;
            if (bad < 3) console.log('bad', res.statusCode, body.length, JSON.stringify(body.slice(0, 40)));
          }
          resolve();
        });
        res.on('error', () => {
          errors++;
          resolve();
        });
      },
    );
    req.on('error', () => {
      errors++;
      resolve();
    });
  });
}
async function loop() {
  while (Date.now() < end) await one();
}
await Promise.all(Array.from({ length: conns }, loop));
console.log(`ok ${ok} bad ${bad} errors ${errors}`);
process.exit(0);
