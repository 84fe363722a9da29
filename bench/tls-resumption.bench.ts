/**
 * What turning TLS session resumption off costs the server (docs/security.md): server CPU per handshake, full
 * handshakes vs resumed ones, for an ECDSA P-256 and an RSA-2048 certificate, TLS 1.3 and 1.2. The server runs in a
 * child process (so only its CPU is counted), with the listener's context options (src/dataplane/tls/cert-store.ts) minus
 * `SSL_OP_NO_TICKET` in the resumed runs; the client makes `--handshakes` sequential connections, reusing the last
 * session in the resumed runs.
 *
 *   node bench/tls-resumption.bench.ts [--handshakes 1000]
 */
import { execFileSync, fork } from 'node:child_process';
import { constants } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer } from 'node:tls';
import { parseArgs } from 'node:util';
import { secureContextOptions } from '../src/dataplane/tls/cert-store.ts';

const { values } = parseArgs({
  options: { handshakes: { type: 'string', default: '1000' }, serve: { type: 'string' } },
});

if (values.serve) {
  // Child: a TLS server; answers the parent's 'cpu' message with its CPU time in µs.
  const { cert, key, tickets } = JSON.parse(values.serve) as { cert: string; key: string; tickets: boolean };
  const opts = secureContextOptions(readFileSync(cert, 'utf8'), readFileSync(key, 'utf8'));
  const secureOptions = tickets ? opts.secureOptions & ~constants.SSL_OP_NO_TICKET : opts.secureOptions;
  const server = createServer({ ...opts, secureOptions }, (s) => s.end('x'));
  server.listen(0, '127.0.0.1', () => process.send!({ port: (server.address() as { port: number }).port }));
  process.on('message', () => {
    const u = process.cpuUsage();
    process.send!({ cpu: u.user + u.system });
  });
} else {
  const dir = mkdtempSync(join(tmpdir(), 'eg-tls-bench-'));
  const certs = {
    'ECDSA P-256': ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'],
    'RSA 2048': ['-newkey', 'rsa:2048'],
  };
  const n = Number(values.handshakes);
  const rows: string[] = [];
  for (const [name, keyArgs] of Object.entries(certs)) {
    const cert = join(dir, `${name}.crt`);
    const key = join(dir, `${name}.key`);
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        ...keyArgs,
        '-nodes',
        '-keyout',
        key,
        '-out',
        cert,
        '-days',
        '2',
        '-subj',
        '/CN=bench.test',
      ],
      { stdio: 'pipe' },
    );
    for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
      const results: Record<string, number> = {};
      for (const tickets of [false, true]) {
        const child = fork(import.meta.filename, ['--serve', JSON.stringify({ cert, key, tickets })]);
        const ask = () =>
          new Promise<Record<string, number>>((r) =>
            child.once('message', (m) => r(m as Record<string, number>)),
          );
        const { port } = await ask();
        let session: Buffer | undefined;
        let reused = 0;
        child.send('cpu');
        const before = (await ask()).cpu!;
        for (let i = 0; i < n; i++) {
          await new Promise<void>((resolve, reject) => {
            const s = connect({
              host: '127.0.0.1',
              port,
              servername: 'bench.test',
              rejectUnauthorized: false,
              minVersion: version,
              maxVersion: version,
              ...(tickets && session ? { session } : {}),
            });
            s.on('session', (b: Buffer) => {
              session = b;
            });
            s.on('secureConnect', () => {
              if (s.isSessionReused()) reused++;
            });
            s.on('data', () => {});
            s.on('close', () => resolve());
            s.on('error', reject);
          });
        }
        child.send('cpu');
        const after = (await ask()).cpu!;
        child.kill();
        results[tickets ? 'resumed' : 'full'] = (after - before) / n;
        if (tickets && reused < n * 0.9) throw new Error(`only ${reused} of ${n} handshakes resumed`);
      }
      rows.push(
        `| ${name} | ${version} | ${results.full!.toFixed(0)} | ${results.resumed!.toFixed(0)} | ${(results.full! - results.resumed!).toFixed(0)} |`,
      );
    }
  }
  rmSync(dir, { recursive: true, force: true });
  console.log(
    `server CPU µs per handshake, ${n} sequential handshakes each, Node ${process.version}, OpenSSL ${process.versions.openssl}`,
  );
  console.log('| certificate | protocol | full handshake | resumed | saved by resumption |');
  console.log('| --- | --- | --- | --- | --- |');
  for (const r of rows) console.log(r);
}
