/**
 * The primary's side of the process model: forks N proxy workers, hands every table version to each of them,
 * tracks which version each one serves (readiness), replaces workers that exit (with crash-loop backoff) and
 * workers whose event loop is blocked (the watchdog: cluster/watchdog.ts), and coordinates the graceful drain.
 * The primary itself never proxies.
 */
import cluster, { type Worker } from 'node:cluster';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CertSet } from '../api/certificate.ts';
import { backoffDelay } from '../lib/backoff.ts';
import type { Logger } from '../lib/log.ts';
import type { TableData } from '../table/types.ts';
import { tableWire } from '../table/wire.ts';
import { type HandoffStats, TableHandoff } from './handoff.ts';
import { PolicyState } from './policy-state.ts';
import {
  isWorkerMessage,
  type PrimaryMessage,
  type SupervisedConfig,
  WORKER_CONFIG_ENV,
  type WorkerMessage,
  type WorkerStats,
} from './protocol.ts';
import { Watchdog, type WatchdogSettings, watchdogSettings } from './watchdog.ts';
import type { WorkerSnapshot } from './worker-report.ts';
import { WorkerRequests } from './worker-requests.ts';

export interface ClusterPrimaryOptions {
  workers: number;
  /** The worker's start-up configuration (src/dataplane/worker-config.ts), passed on as JSON without being read. */
  config: object;
  log: Logger;
  /** A worker that exits sooner than this after its start is a fast exit (crash loop). Default 10 s. */
  minUptimeMs?: number;
  /** Backoff after the 2nd, 3rd… consecutive fast exit of a slot: base · 2^(n-2), capped. Default 250 ms / 30 s. */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** Worker script (default: src/dataplane/worker-main.ts). */
  exec?: string;
  /** Every live worker acknowledged this table version: it is what the gateway serves (Programmed). */
  onServed?: (version: number) => void;
  /** The event-loop watchdog (default: watchdogSettings(), a 5 s block timeout; blockTimeoutMs 0: off). */
  watchdog?: WatchdogSettings;
}

/** A worker the watchdog replaced, for readiness notes and /debug/workers. */
export interface BlockedWorker {
  slot: number;
  pid: number | undefined;
  at: string;
  silentMs: number;
}

/** Replacements of blocked workers are named in readiness notes this long. */
const BLOCKED_NOTE_MS = 10 * 60_000;

/** One worker slot: the process in it now (if any) and its history. */
interface Slot {
  index: number;
  worker: Worker | undefined;
  pid: number | undefined;
  startedAt: number;
  /** Said hello: its IPC handler is installed, tables may be sent. */
  greeted: boolean;
  /** Table version it acknowledged (0: none). */
  version: number;
  /** Table version sent and not answered yet (0: none): at most one table is in flight per worker. */
  inFlight: number;
  listening: boolean;
  /** Consecutive fast exits, for the backoff. */
  fastExits: number;
  restartTimer: NodeJS.Timeout | undefined;
  restartAt: number | undefined;
  lastError: string | undefined;
}

export interface WorkerInfo {
  slot: number;
  id: number | undefined;
  pid: number | undefined;
  state: 'starting' | 'listening' | 'restarting' | 'draining';
  version: number;
  startedAt: string | undefined;
  fastExits: number;
  lastError?: string;
}

export interface ClusterStats {
  workers: number;
  live: number;
  listening: number;
  restarts: number;
  /** Workers replaced by the watchdog (event loop blocked), and the latest of them. */
  blockedReplacements: number;
  blockedRecent: BlockedWorker[];
  version: number;
  lastHandoff: HandoffStats | undefined;
}

export class ClusterPrimary {
  readonly #opts: Required<Omit<ClusterPrimaryOptions, 'exec' | 'onServed' | 'watchdog'>> &
    Pick<ClusterPrimaryOptions, 'onServed'> & { exec: string };
  readonly #watchdog: Watchdog<number>;
  #watchdogTimer: NodeJS.Timeout | undefined;
  /** Workers replaced because their event loop was blocked: the count and the latest ones. */
  #blockedTotal = 0;
  readonly #blockedRecent: BlockedWorker[] = [];
  readonly #log: Logger;
  readonly #slots: Slot[] = [];
  /** Pod-wide policy state shared by the workers over IPC: rate-limit buckets, replay cache of signed requests. */
  readonly policyState = new PolicyState();
  #table: { version: number; hash: string; json: string } | undefined;
  #certs: CertSet | undefined;
  #restarts = 0;
  #draining = false;
  readonly #handoff: TableHandoff;
  readonly #statsRequests = new WorkerRequests<WorkerStats>();
  readonly #metricsRequests = new WorkerRequests<WorkerSnapshot>();
  #firstListening: PromiseWithResolvers<{ address: string; port: number }> = Promise.withResolvers();
  #everListened = false;
  #exited: PromiseWithResolvers<void> | undefined;

  constructor(opts: ClusterPrimaryOptions) {
    if (!cluster.isPrimary) throw new Error('ClusterPrimary runs in the primary process only');
    if (!(opts.workers >= 1)) throw new Error('ClusterPrimary needs at least one worker');
    this.#opts = {
      minUptimeMs: 10_000,
      backoffBaseMs: 250,
      backoffMaxMs: 30_000,
      // Beside this file, with this file's extension: .ts from source (type stripping), .js in the built image.
      exec: fileURLToPath(
        new URL(`../dataplane/worker-main${extname(fileURLToPath(import.meta.url))}`, import.meta.url),
      ),
      ...opts,
    };
    this.#log = opts.log;
    this.#handoff = new TableHandoff((done) => {
      this.#log.info('table handed off to every worker', { ...done });
      this.#opts.onServed?.(done.version);
    });
    this.#watchdog = new Watchdog(opts.watchdog ?? watchdogSettings());
    this.policyState.startSweeping();
    // Table messages are one big string: 'advanced' (V8 serialization) copies it as is, where 'json' would
    // escape every quote in it and parse it twice on the other side.
    cluster.setupPrimary({ exec: this.#opts.exec, args: [], serialization: 'advanced' });
    // The first listen error (port taken, no permission) is fatal; avoid an unhandled rejection before anyone awaits.
    this.#firstListening.promise.catch(() => {});
  }

  /** Forks every worker. They listen once they hold a table: call `publish` to get them going. */
  start(): void {
    for (let i = 0; i < this.#opts.workers; i++) {
      const slot: Slot = {
        index: i,
        worker: undefined,
        pid: undefined,
        startedAt: 0,
        greeted: false,
        version: 0,
        inFlight: 0,
        listening: false,
        fastExits: 0,
        restartTimer: undefined,
        restartAt: undefined,
        lastError: undefined,
      };
      this.#slots.push(slot);
      this.#fork(slot);
    }
    if (this.#watchdog.enabled) {
      this.#watchdogTimer = setInterval(() => this.#checkBlocked(), this.#watchdog.settings.heartbeatMs);
      this.#watchdogTimer.unref();
    }
  }

  /** Workers the watchdog replaced since start. */
  get blockedReplacements(): number {
    return this.#blockedTotal;
  }

  /** Seconds since each live worker (by slot) was last heard from, for edgegate_worker_heartbeat_age_seconds. */
  heartbeatAges(): Record<string, number> {
    const now = Date.now();
    const out: Record<string, number> = {};
    for (const s of this.#slots) {
      const silent = s.worker ? this.#watchdog.silentMs(s.index, now) : undefined;
      if (silent !== undefined) out[String(s.index)] = silent / 1000;
    }
    return out;
  }

  /** Degraded but ready: the workers the watchdog replaced in the last ten minutes. */
  notes(): string[] {
    const since = Date.now() - BLOCKED_NOTE_MS;
    return this.#blockedRecent
      .filter((b) => Date.parse(b.at) >= since)
      .map(
        (b) =>
          `worker slot ${b.slot} (pid ${b.pid}) was replaced at ${b.at}: its event loop was blocked for ${(b.silentMs / 1000).toFixed(1)} s`,
      );
  }

  #checkBlocked(): void {
    if (this.#draining) return;
    const { blockTimeoutMs } = this.#watchdog.settings;
    for (const { key, silentMs } of this.#watchdog.check(Date.now())) {
      const slot = this.#slots[key];
      const worker = slot?.worker;
      if (!slot || !worker) continue;
      this.#blockedTotal++;
      const entry: BlockedWorker = { slot: key, pid: slot.pid, at: new Date().toISOString(), silentMs };
      this.#blockedRecent.push(entry);
      if (this.#blockedRecent.length > 16) this.#blockedRecent.shift();
      slot.lastError = `event loop blocked for ${(silentMs / 1000).toFixed(1)} s; replaced`;
      this.#log.error('worker event loop blocked; replacing it', {
        worker: worker.id,
        slot: key,
        pid: slot.pid,
        silentMs,
        blockTimeoutMs,
        blockedReplacements: this.#blockedTotal,
      });
      // A blocked loop runs no signal handler and no drain: only SIGKILL ends it. Its connections are cut; the
      // other workers keep serving, and #onExit forks the replacement.
      worker.process.kill('SIGKILL');
    }
  }

  /** Resolves with the proxy address once the first worker listens; rejects on a listen error. */
  listening(): Promise<{ address: string; port: number }> {
    return this.#firstListening.promise;
  }

  /** The version last published (0: none yet). */
  get version(): number {
    return this.#table?.version ?? 0;
  }

  /** Workers replaced after an exit, since start. */
  get restarts(): number {
    return this.#restarts;
  }

  get draining(): boolean {
    return this.#draining;
  }

  /**
   * Test hook (EDGEGATE_TEST_HOOKS=1, checked by the caller and the workers): hold every worker's loop busy, or the
   * one in `slot`.
   */
  testBusy(ms: number, blockMs: number, slot?: number): number {
    let n = 0;
    for (const s of this.#slots) {
      if (!s.worker || (slot !== undefined && s.index !== slot)) continue;
      this.#send(s, { type: 'test-busy', ms, blockMs });
      n++;
    }
    return n;
  }

  /** Sends the HTTPS certificates to every worker (and to each new one on its hello). */
  publishCerts(set: CertSet): void {
    this.#certs = set;
    for (const s of this.#slots) if (s.worker && s.greeted) this.#send(s, { type: 'certs', set });
  }

  /**
   * Sends this table to every worker; each acknowledges the version once it serves it. The bytes are the ones
   * compile serialized and hashed (table/wire.ts): nothing is serialized here. A worker still applying an earlier
   * version gets this one when it answers (or a later one, if another was published meanwhile).
   */
  publish(table: TableData): void {
    const { json, hash } = tableWire(table);
    this.#table = { version: table.version, hash, json };
    // Every live worker must acknowledge; one that has not greeted yet gets the table when it does.
    const live = this.#slots.filter((s) => s.worker);
    this.#handoff.begin(
      table.version,
      Buffer.byteLength(json),
      live.map((s) => s.index),
    );
    for (const s of live) if (s.greeted) this.#sendTable(s);
  }

  /** Ready when not draining, a table is published, and every live worker listens and serves that version. */
  readiness(): { ready: boolean; reasons: string[] } {
    const reasons: string[] = [];
    if (this.#draining) reasons.push('draining: the gateway is shutting down');
    const current = this.version;
    if (current === 0) reasons.push('no routing table published yet');
    let live = 0;
    for (const s of this.#slots) {
      if (!s.worker) continue;
      live++;
      const who = `worker ${s.worker.id} (pid ${s.pid})`;
      if (this.#watchdog.isBlocked(s.index))
        reasons.push(`${who}: event loop blocked (no heartbeat); replacing it`);
      else if (current !== 0 && s.version !== current)
        reasons.push(`${who} serves version ${s.version}, current is ${current}`);
      else if (!s.listening) reasons.push(`${who} is not listening yet`);
    }
    if (live === 0) reasons.push('no live worker');
    return { ready: reasons.length === 0, reasons };
  }

  workers(): WorkerInfo[] {
    return this.#slots.map((s) => ({
      slot: s.index,
      id: s.worker?.id,
      pid: s.worker ? s.pid : undefined,
      state: !s.worker ? 'restarting' : this.#draining ? 'draining' : s.listening ? 'listening' : 'starting',
      version: s.worker ? s.version : 0,
      startedAt: s.worker ? new Date(s.startedAt).toISOString() : undefined,
      fastExits: s.fastExits,
      ...(s.lastError ? { lastError: s.lastError } : {}),
    }));
  }

  stats(): ClusterStats {
    const live = this.#slots.filter((s) => s.worker);
    return {
      workers: this.#slots.length,
      live: live.length,
      listening: live.filter((s) => s.listening).length,
      restarts: this.#restarts,
      blockedReplacements: this.#blockedTotal,
      blockedRecent: [...this.#blockedRecent],
      version: this.version,
      lastHandoff: this.#handoff.last,
    };
  }

  /** Asks every live worker for its figures (for /metrics at scrape time); workers that do not answer in time are left out. */
  async collectWorkerStats(timeoutMs = 1000): Promise<WorkerStats[]> {
    const asks = this.#connected().map((s) =>
      this.#statsRequests.ask((id) => this.#send(s, { type: 'stats-request', id }), timeoutMs),
    );
    return (await Promise.all(asks)).filter((s): s is WorkerStats => s !== undefined);
  }

  /**
   * Every live worker's metrics snapshot, asked at scrape time. A worker that does not answer within `timeoutMs`
   * is left out of `answers` (the caller reports it) but listed in `live`.
   */
  async collectWorkerMetrics(timeoutMs = 1000): Promise<{ answers: WorkerSnapshot[]; live: number[] }> {
    const live: number[] = [];
    for (const s of this.#slots) if (s.worker && s.pid !== undefined) live.push(s.pid);
    const asks = this.#connected().map((s) =>
      this.#metricsRequests.ask((id) => this.#send(s, { type: 'metrics-request', id }), timeoutMs),
    );
    const answers = (await Promise.all(asks)).filter((s): s is WorkerSnapshot => s !== undefined);
    return { answers, live };
  }

  #connected(): Slot[] {
    return this.#slots.filter((s) => s.worker?.isConnected());
  }

  /**
   * Graceful drain: readiness fails at once, every worker drains (listener open for `delayMs`, then in-flight
   * requests finish), and this resolves once all workers exited. Workers still alive at `timeoutMs` plus a grace
   * second are killed; `clean` says whether that was needed.
   */
  async drain(opts: { delayMs: number; timeoutMs: number }): Promise<{ clean: boolean }> {
    if (!this.#draining) {
      this.#draining = true;
      this.#exited = Promise.withResolvers();
      for (const s of this.#slots) {
        clearTimeout(s.restartTimer);
        s.restartTimer = undefined;
        if (s.worker) this.#send(s, { type: 'drain', delayMs: opts.delayMs, timeoutMs: opts.timeoutMs });
      }
      this.#checkAllExited();
      clearInterval(this.#watchdogTimer);
    }
    let timer: NodeJS.Timeout | undefined;
    const clean = await Promise.race([
      this.#exited!.promise.then(() => true),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(false), opts.timeoutMs + 1000);
      }),
    ]);
    clearTimeout(timer);
    if (!clean) {
      for (const s of this.#slots) {
        if (!s.worker) continue;
        this.#log.warn('worker did not drain in time; killing it', { worker: s.worker.id, pid: s.pid });
        s.worker.process.kill('SIGKILL');
      }
      await this.#exited!.promise;
    }
    return { clean };
  }

  #checkAllExited(): void {
    if (this.#draining && this.#slots.every((s) => !s.worker)) this.#exited?.resolve();
  }

  #fork(slot: Slot): void {
    slot.restartTimer = undefined;
    slot.restartAt = undefined;
    this.#watchdog.forget(slot.index);
    const beat = this.#watchdog.enabled ? this.#watchdog.settings.heartbeatMs : 0;
    const config: object & SupervisedConfig =
      beat > 0 ? { ...this.#opts.config, watchdog: { heartbeatMs: beat } } : this.#opts.config;
    const worker = cluster.fork({
      [WORKER_CONFIG_ENV]: JSON.stringify(config),
      EDGEGATE_WORKER_SLOT: String(slot.index),
    });
    slot.worker = worker;
    slot.pid = worker.process.pid;
    slot.startedAt = Date.now();
    slot.greeted = false;
    slot.version = 0;
    slot.inFlight = 0;
    slot.listening = false;
    worker.on('message', (m: unknown) => {
      if (isWorkerMessage(m)) this.#onMessage(slot, worker, m);
    });
    // Without a listener, a failed send to a dying worker would throw in the primary.
    worker.on('error', (err) =>
      this.#log.debug('worker IPC error', { worker: worker.id, error: err.message }),
    );
    worker.once('exit', (code, signal) => this.#onExit(slot, worker, code, signal));
  }

  #onMessage(slot: Slot, worker: Worker, m: WorkerMessage): void {
    if (slot.worker !== worker) return;
    switch (m.type) {
      case 'hello':
        slot.greeted = true;
        slot.pid = m.pid;
        this.#watchdog.beat(slot.index, Date.now());
        // Certificates first, so a new worker's HTTPS listener has them from its first handshake.
        if (this.#certs) this.#send(slot, { type: 'certs', set: this.#certs });
        // A new worker gets the current table before it listens (it listens once it has one).
        if (this.#table) {
          this.#handoff.join(slot.index, this.#table.version);
          this.#sendTable(slot);
        }
        return;
      case 'heartbeat':
        this.#watchdog.beat(slot.index, Date.now());
        return;
      case 'table-ack': {
        this.#watchdog.applying(slot.index, false);
        this.#watchdog.beat(slot.index, Date.now());
        slot.version = m.version;
        if (slot.inFlight === m.version) slot.inFlight = 0;
        this.#handoff.acknowledged(slot.index, m.version, m.applyMs);
        // A version published while this one was in flight: the latest goes now.
        this.#sendTable(slot);
        return;
      }
      case 'table-error':
        this.#watchdog.applying(slot.index, false);
        if (slot.inFlight === m.version) slot.inFlight = 0;
        if (this.#table && this.#table.version !== m.version) this.#sendTable(slot);
        slot.lastError = `table version ${m.version}: ${m.message}`;
        this.#log.error('worker could not apply the routing table', {
          worker: worker.id,
          version: m.version,
          error: m.message,
        });
        return;
      case 'listening':
        slot.listening = true;
        if (!this.#everListened) {
          this.#everListened = true;
          this.#firstListening.resolve(m.address);
          if (!m.reusePort)
            this.#log.info('workers share the listening socket through the primary (no SO_REUSEPORT here)');
        }
        return;
      case 'listen-error':
        slot.lastError = `listen: ${m.message}`;
        if (!this.#everListened) this.#firstListening.reject(new Error(m.message));
        else this.#log.error('worker cannot listen', { worker: worker.id, error: m.message });
        return;
      case 'draining':
        return;
      case 'policy-call':
        if (m.lease?.global) {
          // A Global limit: the shared store answers (within its timeout, never rejecting).
          void this.policyState
            .leaseGlobal(m.lease)
            .then((lease) => this.#send(slot, { type: 'policy-reply', id: m.id, lease }));
          return;
        }
        // Pod-wide policy state (rate-limit buckets, replay cache) lives here: answer at once.
        this.#send(slot, {
          type: 'policy-reply',
          id: m.id,
          ...(m.lease ? { lease: this.policyState.lease(m.lease) } : {}),
          ...(m.seen ? { fresh: this.policyState.firstSeen(m.seen.key, m.seen.ttlMs) } : {}),
        });
        return;
      case 'stats':
        this.#statsRequests.answer(m.id, m.stats);
        return;
      case 'metrics':
        this.#metricsRequests.answer(m.id, m.snapshot);
        return;
    }
  }

  /** Sends the current table unless the worker serves it already or is still applying an earlier one. */
  #sendTable(slot: Slot): void {
    const t = this.#table;
    if (!t || slot.inFlight !== 0 || slot.version === t.version) return;
    slot.inFlight = t.version;
    this.#watchdog.applying(slot.index, true);
    this.#send(slot, { type: 'table', version: t.version, hash: t.hash, json: t.json, sentAt: Date.now() });
  }

  #send(slot: Slot, m: PrimaryMessage): void {
    const w = slot.worker;
    if (!w?.isConnected()) return;
    try {
      w.send(m);
    } catch (err) {
      this.#log.debug('cannot send to worker', { worker: w.id, error: (err as Error).message });
    }
  }

  #onExit(slot: Slot, worker: Worker, code: number | null, signal: string | null): void {
    if (slot.worker !== worker) return;
    slot.worker = undefined;
    slot.listening = false;
    slot.version = 0;
    this.#watchdog.forget(slot.index);
    // A worker that was part of a pending hand-off no longer holds it up.
    this.#handoff.left(slot.index);
    if (this.#draining) {
      this.#log.info('worker exited', { worker: worker.id, pid: slot.pid, code, signal });
      this.#checkAllExited();
      return;
    }
    if (!this.#everListened && code === 2) {
      // Could not listen at all: restarting would fail the same way. The caller sees listening() reject.
      return;
    }
    const uptimeMs = Date.now() - slot.startedAt;
    slot.fastExits = uptimeMs < this.#opts.minUptimeMs ? slot.fastExits + 1 : 0;
    // The first fast exit restarts at once; from the second on, lib/backoff's exponential delay without jitter
    // (one pod's workers need no spreading): base · 2^(n-2), capped.
    const delayMs =
      slot.fastExits <= 1
        ? 0
        : backoffDelay(
            slot.fastExits - 1,
            { baseMs: this.#opts.backoffBaseMs, maxMs: this.#opts.backoffMaxMs },
            () => 1,
          );
    this.#log.warn('worker exited; restarting', {
      worker: worker.id,
      pid: slot.pid,
      code,
      signal,
      uptimeMs,
      fastExits: slot.fastExits,
      restartInMs: delayMs,
      restarts: this.#restarts + 1,
    });
    slot.restartAt = Date.now() + delayMs;
    slot.restartTimer = setTimeout(() => {
      this.#restarts++;
      this.#fork(slot);
    }, delayMs);
  }
}
