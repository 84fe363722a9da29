/**
 * TLS test helpers: certificates made with `openssl req -x509` (node:crypto cannot issue X.509), a gateway
 * started through the CLI with HTTPS flags, and a TLS probe that reports the certificate a handshake served.
 */
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { connect, type PeerCertificate, type TLSSocket } from 'node:tls';
import { request } from 'undici';
import { freePort, type Proc, spawnCli, waitFor } from '../cluster/helpers.ts';

export interface TestCert {
  cert: string;
  key: string;
  certPem: string;
  keyPem: string;
}

/** A self-signed certificate for `cn` (plus `sans`), written to dir/name.{crt,key}. */
export function makeCert(dir: string, name: string, cn: string, sans: string[] = [cn], days = 30): TestCert {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      String(days),
      '-subj',
      `/CN=${cn}/O=${name}`,
      '-addext',
      `subjectAltName=${sans.map((s) => (/^[\d.]+$/.test(s) ? `IP:${s}` : `DNS:${s}`)).join(',')}`,
    ],
    { stdio: 'pipe' },
  );
  return { cert, key, certPem: readFileSync(cert, 'utf8'), keyPem: readFileSync(key, 'utf8') };
}

/** Replaces a file atomically (write + rename), as a Secret volume or cert-manager would. */
export function replaceFile(path: string, content: string): void {
  writeFileSync(`${path}.tmp`, content);
  renameSync(`${path}.tmp`, path);
}

export interface Served {
  subject: string;
  /** The O= of the subject: which test certificate it was. */
  org: string;
  alpn: string | false | null;
  protocol: string | null;
}

/** Handshakes with SNI `servername` (undefined: none) and reports what the server presented. */
export function servedCert(
  port: number,
  servername: string | undefined,
  alpn = ['h2', 'http/1.1'],
): Promise<Served> {
  return new Promise((resolve, reject) => {
    const s = connect({
      host: '127.0.0.1',
      port,
      ...(servername ? { servername } : {}),
      rejectUnauthorized: false,
      ALPNProtocols: alpn,
    });
    s.once('secureConnect', () => {
      const c: PeerCertificate = s.getPeerCertificate();
      const subject = c.subject ? `CN=${c.subject.CN}, O=${c.subject.O}` : '';
      resolve({ subject, org: String(c.subject?.O ?? ''), alpn: s.alpnProtocol, protocol: s.getProtocol() });
      s.destroy();
    });
    s.once('error', reject);
  });
}

export interface TlsGateway extends Proc {
  port: number;
  tlsPort: number;
  adminPort: number;
}

/** `edgegate run` with HTTPS flags through the CLI (primary + `workers` workers), waited until ready. */
export async function startTlsGateway(opts: {
  /** Standalone routes; without it, `args` name the route source (`--kube --kubeconfig …`). */
  routes?: string;
  catalog: string;
  workers: number;
  args: string[];
  env?: NodeJS.ProcessEnv;
}): Promise<TlsGateway> {
  const [port, tlsPort, adminPort] = [await freePort(), await freePort(), await freePort()];
  const p = spawnGateway(
    [
      'run',
      ...(opts.routes ? ['--routes', opts.routes] : []),
      '--catalog',
      opts.catalog,
      '--listen',
      `127.0.0.1:${port}`,
      '--listen-tls',
      `127.0.0.1:${tlsPort}`,
      '--admin',
      `127.0.0.1:${adminPort}`,
      '--workers',
      String(opts.workers),
      '--drain-delay',
      '100ms',
      '--drain-timeout',
      '3s',
      ...opts.args,
    ],
    opts.env,
  );
  await waitFor(
    'the gateway to be ready',
    async () => {
      if (p.child.exitCode !== null) throw new Error(`gateway exited:\n${p.output()}`);
      const r = await request(`http://127.0.0.1:${adminPort}/readyz`);
      await r.body.text();
      return r.statusCode === 200;
    },
    30_000,
  );
  return { ...p, port, tlsPort, adminPort };
}

function spawnGateway(args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  return spawnCli(args, { EDGEGATE_LOG_LEVEL: 'info', ...env });
}

/** Runs a command; resolves with its exit code and output (never rejects on a non-zero exit). */
export function run(
  cmd: string,
  args: string[],
  timeoutMs = 60_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export function routeYaml(name: string, hostnames: string[], extra = ''): string {
  return `apiVersion: edgegate.io/v1alpha1
kind: GatewayRoute
metadata: { name: ${name}, namespace: tls }
spec:
  hostnames: [${hostnames.map((h) => JSON.stringify(h)).join(', ')}]
  rules:
    - backends:
        - consul: { service: echo, datacenter: dc1 }
${extra}`;
}

export interface HeldDownload {
  /** The response, paused after its first bytes: the connection stays open until the test resumes it. */
  response: IncomingMessage;
  /** Status, bytes received and the organisation of the certificate the connection was set up with. */
  done: Promise<{ status: number; bytes: number; org: string }>;
  close(): void;
}

/** Starts a large HTTPS download from the echo upstream behind `host` and holds it open (backpressure). */
export async function startHeldDownload(port: number, host: string, size: number): Promise<HeldDownload> {
  const agent = new HttpsAgent({ keepAlive: true, maxSockets: 1 });
  const started = Promise.withResolvers<IncomingMessage>();
  let received = 0;
  const done = new Promise<{ status: number; bytes: number; org: string }>((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        servername: host,
        path: `/big?size=${size}&chunks=256`,
        headers: { host },
        rejectUnauthorized: false,
        agent,
      },
      (res) => {
        const org = String((res.socket as TLSSocket).getPeerCertificate().subject?.O);
        res.on('data', (c: Buffer) => {
          received += c.length;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes: received, org }));
        res.on('error', reject);
        res.pause();
        started.resolve(res);
      },
    );
    req.on('error', (err) => {
      reject(err);
      started.reject(err);
    });
    req.end();
  });
  return { response: await started.promise, done, close: () => agent.destroy() };
}
