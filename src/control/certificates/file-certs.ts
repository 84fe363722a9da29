/**
 * Standalone certificates: `--tls-cert [HOST[,HOST…]=]CERT.pem,KEY.pem` (repeatable) and
 * `--tls-default-cert CERT.pem,KEY.pem`. The files are polled (stat every 250 ms, which also follows the symlink
 * swap of a mounted Secret volume); a changed file is re-read and checked, and a certificate that fails the check
 * is logged while its hostnames keep the previous one.
 */
import { unwatchFile, watchFile } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { type CertBundle, CertificateError, inspectCertificate } from '../../api/certificate.ts';
import { ConfigError } from '../../lib/errors.ts';
import type { Logger } from '../../lib/log.ts';

export interface CertFileSpec {
  hostnames: string[];
  certFile: string;
  keyFile: string;
  /** A client certificate for mTLS to upstreams: its `namespace/name` (no hostnames). */
  key?: string;
}

export type ClientCertFileSpec = CertFileSpec & { key: string };

const NAME = '[a-z0-9]([-a-z0-9.]*[a-z0-9])?';

/** Parses one `--upstream-client-cert NAMESPACE/NAME=CERT.pem,KEY.pem` value. */
export function parseClientCertFlag(value: string): ClientCertFileSpec {
  const flag = '--upstream-client-cert';
  const m = new RegExp(`^(${NAME})/(${NAME})=([^,]+),([^,]+)$`).exec(value);
  if (!m)
    throw new ConfigError(
      `${flag}: expected NAMESPACE/NAME=CERT.pem,KEY.pem (the NAME a backend's tls.clientCertificateRef names, in the route's namespace), got ${JSON.stringify(value)}`,
    );
  return { key: `${m[1]}/${m[3]}`, hostnames: [], certFile: m[5]!, keyFile: m[6]! };
}

/** Parses one `--tls-cert` / `--tls-default-cert` value. */
export function parseCertFlag(value: string, flag: string, allowHosts = true): CertFileSpec {
  const eq = value.indexOf('=');
  const hostPart = eq >= 0 ? value.slice(0, eq) : '';
  const files = (eq >= 0 ? value.slice(eq + 1) : value).split(',');
  if (eq >= 0 && !allowHosts)
    throw new ConfigError(`${flag}: expected CERT.pem,KEY.pem, got ${JSON.stringify(value)}`);
  if (files.length !== 2 || !files[0] || !files[1])
    throw new ConfigError(`${flag}: expected [HOST[,HOST…]=]CERT.pem,KEY.pem, got ${JSON.stringify(value)}`);
  const hostnames = hostPart
    .split(',')
    .map((h) => h.trim().toLowerCase())
    .filter(Boolean);
  for (const h of hostnames)
    if (!/^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(h))
      throw new ConfigError(`${flag}: invalid hostname ${JSON.stringify(h)}`);
  return { hostnames, certFile: files[0], keyFile: files[1] };
}

export const FILE_POLL_MS = 250;

export class FileCertSource {
  readonly #specs: CertFileSpec[];
  readonly #defaultSpec: CertFileSpec | undefined;
  readonly #log: Logger;
  /** Last good bundle per spec (index; -1 the default): kept when a new version fails its check. */
  readonly #good = new Map<number, CertBundle>();
  #emit: ((bundles: CertBundle[], def: CertBundle | undefined) => void) | undefined;
  #files: string[] = [];
  #reloading: Promise<void> | undefined;
  #again = false;

  constructor(specs: CertFileSpec[], defaultSpec: CertFileSpec | undefined, log: Logger) {
    this.#specs = specs;
    this.#defaultSpec = defaultSpec;
    this.#log = log;
  }

  get configured(): boolean {
    return this.#specs.length > 0 || this.#defaultSpec !== undefined;
  }

  /** Reads every file once (a bad file at start is a configuration error) and starts watching. */
  async start(emit: (bundles: CertBundle[], def: CertBundle | undefined) => void): Promise<void> {
    this.#emit = emit;
    await this.#load(true);
    this.#files = [
      ...new Set(
        [...this.#specs, ...(this.#defaultSpec ? [this.#defaultSpec] : [])].flatMap((s) => [
          s.certFile,
          s.keyFile,
        ]),
      ),
    ];
    for (const f of this.#files)
      watchFile(f, { interval: FILE_POLL_MS, persistent: false }, (cur, prev) => {
        if (cur.mtimeMs !== prev.mtimeMs || cur.size !== prev.size || cur.ino !== prev.ino) this.#reload();
      });
  }

  stop(): void {
    for (const f of this.#files) unwatchFile(f);
    this.#files = [];
  }

  #reload(): void {
    if (this.#reloading) {
      this.#again = true;
      return;
    }
    this.#reloading = this.#load(false).finally(() => {
      this.#reloading = undefined;
      if (this.#again) {
        this.#again = false;
        this.#reload();
      }
    });
  }

  async #load(strict: boolean): Promise<void> {
    const all: [number, CertFileSpec][] = this.#specs.map((s, i) => [i, s]);
    if (this.#defaultSpec) all.push([-1, this.#defaultSpec]);
    for (const [i, spec] of all) {
      const source = `file:${spec.certFile}`;
      try {
        const [certPem, keyPem] = await Promise.all([
          readFile(spec.certFile, 'utf8'),
          readFile(spec.keyFile, 'utf8'),
        ]);
        inspectCertificate(certPem, keyPem);
        const prev = this.#good.get(i);
        if (!prev || prev.certPem !== certPem || prev.keyPem !== keyPem) {
          this.#good.set(i, {
            source,
            hostnames: spec.hostnames,
            certPem,
            keyPem,
            ...(spec.key ? { key: spec.key } : {}),
          });
          if (prev) this.#log.info('certificate reloaded', { source });
        }
      } catch (err) {
        const reason = err instanceof CertificateError ? err.reason : 'ReadError';
        const message = `${spec.certFile}, ${spec.keyFile}: ${(err as Error).message}`;
        if (strict) throw new ConfigError(`TLS certificate ${message}`);
        this.#log.error('certificate not loaded; its hostnames keep the previous one', {
          source,
          reason,
          message,
        });
      }
    }
    const bundles = this.#specs
      .map((_, i) => this.#good.get(i))
      .filter((b): b is CertBundle => b !== undefined);
    this.#emit?.(bundles, this.#good.get(-1));
  }
}
