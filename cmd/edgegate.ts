#!/usr/bin/env node
/**
 * edgegate CLI: argument parsing and wiring only. `run`, `validate FILE…`, `routes`, `migrate [FILE…]`, `echo`.
 */
import { readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Command, Option } from 'commander';
import type { RouteSource } from '../src/api/route-source.ts';
import { cpuLimit } from '../src/cluster/cpu-limit.ts';
import { compile } from '../src/compile/compile.ts';
import { parseCertFlag, parseClientCertFlag } from '../src/control/certificates/file-certs.ts';
import { describeStatus } from '../src/control/control-plane.ts';
import { kubeOptionsFrom } from '../src/control/kube-flags.ts';
import { rateLimitStoreSettingsFrom } from '../src/control/rate-limit-store-setup.ts';
import { consulOption } from '../src/control/sources/consul/cli.ts';
import { FileRouteSource, readCatalogFile, readRouteFile } from '../src/control/sources/file/file-source.ts';
import { accessLogSettings } from '../src/dataplane/observe/access-log.ts';
import { resolveTracingSettings, type TracingSettings } from '../src/dataplane/observe/tracing-settings.ts';
import { policySettingsFrom } from '../src/dataplane/policy/settings.ts';
import { EDGE_FLAGS, edgeFlagHelp, edgeSettingsFrom } from '../src/dataplane/proxy/edge-flags.ts';
import { proxyProtocolSourcesFrom } from '../src/dataplane/proxy/proxy-protocol-listener.ts';
import { DurationError, parseDurationSetting } from '../src/lib/duration.ts';
import { ConfigError } from '../src/lib/errors.ts';
import { createLogger } from '../src/lib/log.ts';
import { parseListen, runClusterGateway, runGateway } from '../src/run.ts';
import { formatTable } from '../src/table/format.ts';
import { createEchoServer } from '../src/tools/echo-server.ts';
import { migrateIngressYaml } from '../src/tools/migrate-ingress.ts';

/** package.json is one level up from cmd/ (source) or two from dist/cmd/ (built image). */
function readPackage(): { version: string } {
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      return JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8'));
    } catch {}
  }
  return { version: '0.0.0' };
}
const pkg = readPackage();

function fail(err: unknown): never {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`edgegate: ${message}\n`);
  process.exit(err instanceof ConfigError ? 2 : 1);
}

/** A duration flag (src/lib/duration.ts: `5s`, `250ms`, `1m30s`, or `0`), refused as a ConfigError naming it. */
function parseDurationFlag(value: string, flag: string): number {
  try {
    return parseDurationSetting(value, flag);
  } catch (err) {
    if (err instanceof DurationError) throw new ConfigError(err.message);
    throw err;
  }
}

const program = new Command()
  .name('edgegate')
  .description(
    'Kubernetes edge gateway: GatewayRoutes and the Consul catalog in, pooled HTTP/1.1 proxying out.',
  )
  .version(pkg.version, '-v, --version')
  .showHelpAfterError();

/** A repeatable flag whose environment variable holds several values separated by `;`. */
function collectSpecs(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), ...value.split(';').filter(Boolean)];
}

/** The edge defaults of the data plane as flags (src/dataplane/proxy/edge-flags.ts). */
function edgeOptions(): Option[] {
  return EDGE_FLAGS.map((f) =>
    new Option(
      f.parse === 'switch'
        ? f.flag
        : `${f.flag} <${f.parse === 'duration' ? 'duration' : f.parse === 'size' ? 'size' : f.parse === 'choice' ? f.choices!.join('|') : 'n'}>`,
      edgeFlagHelp(f),
    ).env(f.env),
  );
}

const runCommand = program
  .command('run')
  .description('run the gateway (standalone from files, or with --kube / --consul)')
  .addOption(new Option('--listen <addr>', 'HTTP proxy address').env('EDGEGATE_LISTEN').default(':8080'))
  .addOption(
    new Option('--listen-tls <addr>', 'HTTPS proxy address (opens only when certificates are configured)')
      .env('EDGEGATE_LISTEN_TLS')
      .default(':8443'),
  )
  .addOption(
    new Option(
      '--tls-cert <spec>',
      'certificate for HTTPS, [HOST[,HOST…]=]CERT.pem,KEY.pem (repeatable; hosts default to the certificate’s DNS names; env: ;-separated)',
    )
      .env('EDGEGATE_TLS_CERT')
      .argParser(collectSpecs),
  )
  .addOption(
    new Option(
      '--tls-default-cert <spec>',
      'certificate for unknown hostnames and clients without SNI: CERT.pem,KEY.pem',
    ).env('EDGEGATE_TLS_DEFAULT_CERT'),
  )
  .addOption(
    new Option(
      '--upstream-client-cert <spec>',
      'client certificate for mTLS to upstreams, NAMESPACE/NAME=CERT.pem,KEY.pem: what a backend’s tls.clientCertificateRef { name: NAME } in a route of NAMESPACE presents (repeatable; env: ;-separated)',
    )
      .env('EDGEGATE_UPSTREAM_CLIENT_CERT')
      .argParser(collectSpecs),
  )
  .addOption(
    new Option('--https-redirect <status>', 'redirect every HTTP request to HTTPS with this status')
      .env('EDGEGATE_HTTPS_REDIRECT')
      .choices(['301', '308']),
  )
  .addOption(
    new Option('--https-port <port>', 'public HTTPS port used in redirects (443: omitted from the URL)')
      .env('EDGEGATE_HTTPS_PORT')
      .default('443'),
  )
  .addOption(
    new Option(
      '--admin <addr>',
      'admin address: /healthz, /readyz, /metrics (and /debug/* when it is a loopback address)',
    )
      .env('EDGEGATE_ADMIN')
      .default(':9901'),
  )
  .addOption(
    new Option(
      '--admin-debug <addr>',
      'address of the debug endpoints (/debug/*, secrets redacted), or off (default: --admin when it is loopback, else 127.0.0.1:9902)',
    ).env('EDGEGATE_ADMIN_DEBUG'),
  )
  .addOption(
    new Option('--routes <path>', 'GatewayRoute YAML file or directory (standalone)').env('EDGEGATE_ROUTES'),
  )
  .addOption(new Option('--catalog <file>', 'service catalog YAML file (standalone)').env('EDGEGATE_CATALOG'))
  .addOption(
    new Option('--consul', 'discover services from Consul (on when CONSUL_HTTP_ADDR is set)').env(
      'EDGEGATE_CONSUL',
    ),
  )
  .addOption(new Option('--kube', 'read GatewayRoutes from Kubernetes').env('EDGEGATE_KUBE'))
  .addOption(new Option('--kubeconfig <file>', 'kubeconfig outside a cluster').env('EDGEGATE_KUBECONFIG'))
  .addOption(
    new Option('--watch-namespaces <list>', 'comma-separated namespaces to watch (default: all)').env(
      'EDGEGATE_WATCH_NAMESPACES',
    ),
  )
  .addOption(
    new Option(
      '--tls-secret-namespaces <list>',
      'with --kube: comma-separated namespaces whose kubernetes.io/tls Secrets routes may name in spec.tls (default: none)',
    ).env('EDGEGATE_TLS_SECRET_NAMESPACES'),
  )
  .addOption(
    new Option(
      '--ingress',
      'with --kube: serve networking.k8s.io/v1 Ingresses of IngressClasses with controller edgegate.io/ingress-controller (docs/ingress.md)',
    ).env('EDGEGATE_INGRESS'),
  )
  .addOption(
    new Option(
      '--ingress-class <name>',
      'with --ingress: the value of the legacy kubernetes.io/ingress.class annotation edgegate serves',
    )
      .env('EDGEGATE_INGRESS_CLASS')
      .default('edgegate'),
  )
  .addOption(
    new Option(
      '--ingress-publish-address <list>',
      'with --ingress: comma-separated IPs or host names written to the served Ingresses’ status.loadBalancer (default: none written)',
    ).env('EDGEGATE_INGRESS_PUBLISH_ADDRESS'),
  )
  .addOption(
    new Option(
      '--gateway-api',
      'with --kube: also serve Gateway API GatewayClasses (controllerName edgegate.io/gateway), Gateways and HTTPRoutes',
    ).env('EDGEGATE_GATEWAY_API'),
  )
  .addOption(
    new Option(
      '--gateway-api-ports <http[,https]>',
      'the ports clients reach the HTTP and HTTPS listeners on: Gateway listeners must use them (default 80,443)',
    ).env('EDGEGATE_GATEWAY_API_PORTS'),
  )
  .addOption(
    new Option(
      '--gateway-api-addresses <list>',
      'addresses written in Gateway status (the chart: the node IP)',
    ).env('EDGEGATE_GATEWAY_API_ADDRESSES'),
  )
  .addOption(
    new Option('--lease-namespace <ns>', 'namespace of the leader Lease (default: POD_NAMESPACE)').env(
      'EDGEGATE_LEASE_NAMESPACE',
    ),
  )
  .addOption(
    new Option('--lease-duration <d>', 'leader lease duration').env('EDGEGATE_LEASE_DURATION').default('15s'),
  )
  .addOption(
    new Option('--renew-deadline <d>', 'leader renew deadline').env('EDGEGATE_RENEW_DEADLINE').default('10s'),
  )
  .addOption(
    new Option('--retry-period <d>', 'leader retry period').env('EDGEGATE_RETRY_PERIOD').default('2s'),
  )
  .addOption(
    new Option(
      '--status-write-rate <n>',
      'GatewayRoute status writes per second, sustained (burst: twice that); changed routes are written first',
    )
      .env('EDGEGATE_STATUS_WRITE_RATE')
      .default('100'),
  )
  .addOption(
    new Option(
      '--workers <n>',
      'proxy worker processes (default: the CPU limit, cgroup-aware; 0: proxy in-process)',
    ).env('EDGEGATE_WORKERS'),
  )
  .addOption(
    new Option(
      '--worker-block-timeout <duration>',
      'replace a proxy worker whose event loop is blocked (no heartbeat) this long; 0: never',
    )
      .env('EDGEGATE_WORKER_BLOCK_TIMEOUT')
      .default('5s'),
  )
  .addOption(
    new Option('--drain-delay <duration>', 'on SIGTERM, keep listening this long after readiness fails')
      .env('EDGEGATE_DRAIN_DELAY')
      .default('5s'),
  )
  .addOption(
    new Option('--drain-timeout <duration>', 'on SIGTERM, cut requests still running after this long')
      .env('EDGEGATE_DRAIN_TIMEOUT')
      .default('25s'),
  )
  .addOption(
    new Option('--state-dir <dir>', 'where the last-known-good table is kept').env('EDGEGATE_STATE_DIR'),
  )
  .addOption(
    new Option(
      '--last-known-good-max-age <duration>',
      'a last-known-good table older than this at start is stale (0: no limit)',
    )
      .env('EDGEGATE_LAST_KNOWN_GOOD_MAX_AGE')
      .default('0'),
  )
  .addOption(
    new Option(
      '--last-known-good-when-stale <action>',
      'a stale last-known-good table: serve (warned) or refuse',
    )
      .choices(['serve', 'refuse'])
      .env('EDGEGATE_LAST_KNOWN_GOOD_WHEN_STALE')
      .default('serve'),
  )
  .addOption(
    new Option('--datacenter <name>', 'local datacenter for consul backends without one').env(
      'EDGEGATE_DATACENTER',
    ),
  )
  .addOption(
    new Option(
      '--consul-mesh-service <name>',
      "the gateway's Consul service name: its service-mesh identity for mesh backends",
    ).env('EDGEGATE_CONSUL_MESH_SERVICE'),
  )
  .addOption(
    new Option('--trusted-hops <n>', 'proxies in front whose X-Forwarded-For is trusted')
      .env('EDGEGATE_TRUSTED_HOPS')
      .default('0'),
  )
  .addOption(
    new Option('--ip-allow <cidrs>', 'only these client addresses, comma-separated CIDRs (all routes)').env(
      'EDGEGATE_IP_ALLOW',
    ),
  )
  .addOption(
    new Option('--ip-deny <cidrs>', 'never these client addresses, comma-separated CIDRs (all routes)').env(
      'EDGEGATE_IP_DENY',
    ),
  )
  .addOption(
    new Option('--secrets-dir <dir>', 'key sets for signatures and JWT: <dir>/<set>/<key id>').env(
      'EDGEGATE_SECRETS_DIR',
    ),
  )
  .addOption(
    new Option(
      '--proxy-protocol <cidrs>',
      'PROXY protocol v1/v2 on the proxy listeners: comma-separated CIDRs of the trusted load balancers, whose connections must start with the header (others are served plain, a header from them never honoured); default off',
    ).env('EDGEGATE_PROXY_PROTOCOL'),
  )
  .addOption(
    new Option(
      '--redis-url <url>',
      'Redis/Valkey for rateLimit.scope Global: redis://[user:password@]host:port[/db] or rediss:// (TLS); password also from EDGEGATE_REDIS_PASSWORD',
    ).env('EDGEGATE_REDIS_URL'),
  )
  .addOption(
    new Option('--redis-password-file <file>', 'the Redis password in a file (a mounted Secret)').env(
      'EDGEGATE_REDIS_PASSWORD_FILE',
    ),
  )
  .addOption(
    new Option(
      '--redis-timeout <duration>',
      'hard timeout of each Redis call (≤ 200ms); beyond it the rule’s failureMode decides',
    )
      .env('EDGEGATE_REDIS_TIMEOUT')
      .default('100ms'),
  )
  .addOption(
    new Option(
      '--overload-delay <duration>',
      'event-loop delay (p99) at which low-priority rules are shed; 0: off',
    )
      .env('EDGEGATE_OVERLOAD_DELAY')
      .default('200ms'),
  )
  .addOption(
    new Option(
      '--overload-memory <bytes>',
      'resident memory at which Low and Normal rules are shed (e.g. 1536Mi)',
    ).env('EDGEGATE_OVERLOAD_MEMORY'),
  )
  .addOption(
    new Option('--log-level <level>', 'error, warn, info, debug')
      .env('EDGEGATE_LOG_LEVEL')
      .choices(['error', 'warn', 'info', 'debug'])
      .default('info'),
  )
  .addOption(
    new Option('--access-log <on|off>', 'one JSON line per request on stdout')
      .env('EDGEGATE_ACCESS_LOG')
      .choices(['on', 'off'])
      .default('on'),
  )
  .addOption(
    new Option('--access-log-sample <rate>', 'share of requests logged, 0 to 1 (answers >= 500 always)')
      .env('EDGEGATE_ACCESS_LOG_SAMPLE')
      .default('1'),
  )
  .addOption(
    new Option(
      '--access-log-headers <names>',
      'comma-separated request headers whose values are logged (credentials are refused)',
    )
      .env('EDGEGATE_ACCESS_LOG_HEADERS')
      .default('user-agent'),
  )
  .addOption(
    new Option(
      '--otlp-endpoint <url>',
      'OpenTelemetry tracing: OTLP/HTTP collector base URL (/v1/traces is appended); tracing is off without it (or OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT)',
    ),
  )
  .addOption(
    new Option(
      '--tracing-sample-ratio <ratio>',
      'share of new traces sampled, 0 to 1 (default: OTEL_TRACES_SAMPLER_ARG, else 1); a client traceparent decides for its trace',
    ),
  )
  .addOption(
    new Option(
      '--tracing-service-name <name>',
      'service.name of the spans (default: OTEL_SERVICE_NAME, else edgegate)',
    ),
  )
  .addOption(
    new Option(
      '--tracing-queue-size <spans>',
      'spans a worker holds for export; more are dropped and counted (default 2048)',
    ).env('EDGEGATE_TRACING_QUEUE_SIZE'),
  )
  .action(async (o) => {
    try {
      const httpsPort = Number(o.httpsPort);
      if (!Number.isInteger(httpsPort) || httpsPort < 1 || httpsPort > 65535)
        throw new ConfigError('--https-port: expected a port 1…65535');
      parseListen(o.listenTls, '--listen-tls');
      const trustedHops = Number(o.trustedHops);
      if (!Number.isInteger(trustedHops) || trustedHops < 0)
        throw new ConfigError('--trusted-hops: expected a whole number ≥ 0');
      const workers = o.workers === undefined ? cpuLimit() : Number(o.workers);
      if (!Number.isInteger(workers) || workers < 0 || workers > 1024)
        throw new ConfigError(`--workers: expected a whole number 0…1024, got ${JSON.stringify(o.workers)}`);
      const drain = {
        delayMs: parseDurationFlag(o.drainDelay, '--drain-delay'),
        timeoutMs: parseDurationFlag(o.drainTimeout, '--drain-timeout'),
      };
      if (drain.timeoutMs < drain.delayMs)
        throw new ConfigError('--drain-timeout must not be shorter than --drain-delay');
      if (o.gatewayApi && !(o.kube || o.kubeconfig))
        throw new ConfigError('--gateway-api needs --kube (Gateway API objects are read from Kubernetes)');
      if (o.tlsSecretNamespaces && !(o.kube || o.kubeconfig))
        throw new ConfigError('--tls-secret-namespaces needs --kube (Secrets are read from Kubernetes)');
      if (o.ingress && !o.kube && !o.kubeconfig)
        throw new ConfigError('--ingress needs --kube (Ingresses are read from Kubernetes)');
      const workerBlockTimeoutMs = parseDurationFlag(o.workerBlockTimeout, '--worker-block-timeout');
      if (workerBlockTimeoutMs > 0 && workerBlockTimeoutMs < 500)
        throw new ConfigError('--worker-block-timeout: at least 500ms (or 0: off)');
      if (o.adminDebug !== undefined && String(o.adminDebug).trim().toLowerCase() !== 'off')
        parseListen(o.adminDebug, '--admin-debug');
      let tracing: TracingSettings;
      try {
        tracing = resolveTracingSettings(
          {
            otlpEndpoint: o.otlpEndpoint,
            sampleRatio: o.tracingSampleRatio,
            serviceName: o.tracingServiceName,
            queueSize: o.tracingQueueSize,
          },
          process.env,
        );
      } catch (err) {
        throw new ConfigError((err as Error).message);
      }
      const options = {
        listen: o.listen,
        admin: o.admin,
        ...(o.adminDebug !== undefined ? { adminDebug: String(o.adminDebug) } : {}),
        routes: o.routes,
        catalog: o.catalog,
        consul: consulOption(o, process.env),
        stateDir: o.stateDir,
        lastKnownGoodAge: {
          maxAgeMs: parseDurationFlag(o.lastKnownGoodMaxAge, '--last-known-good-max-age'),
          whenStale: o.lastKnownGoodWhenStale as 'serve' | 'refuse',
        },
        logLevel: o.logLevel,
        datacenter: o.datacenter,
        trustedHops,
        ...edgeSettingsOf(o),
        policy: policySettingsFrom(o, process.env, parseDurationFlag),
        redis: rateLimitStoreSettingsFrom(o, process.env, parseDurationFlag),
        listenTls: o.listenTls,
        tlsCerts: ((o.tlsCert as string[] | undefined) ?? []).map((v) => parseCertFlag(v, '--tls-cert')),
        tlsDefaultCert: o.tlsDefaultCert
          ? parseCertFlag(o.tlsDefaultCert, '--tls-default-cert', false)
          : undefined,
        upstreamClientCerts: ((o.upstreamClientCert as string[] | undefined) ?? []).map(parseClientCertFlag),
        httpsRedirect: o.httpsRedirect
          ? { statusCode: Number(o.httpsRedirect) as 301 | 308, port: httpsPort }
          : undefined,
        ...(o.kube || o.kubeconfig ? { kube: kubeOptionsFrom(o) } : {}),
        accessLog: accessLogSettings({
          enabled: o.accessLog === 'on',
          sampleRate: o.accessLogSample,
          headers: o.accessLogHeaders,
        }),
        tracing,
      };
      const gw =
        workers === 0
          ? await runGateway(options)
          : await runClusterGateway({ ...options, workers, drain, workerBlockTimeoutMs });
      let firstSignal = 0;
      const shutdown = (signal: string) => {
        if (firstSignal > 0) {
          // The same signal often arrives twice at once (group delivery plus a wrapper forwarding it): ignore
          // that. A second one well after the first is a person insisting: stop now.
          if (Date.now() - firstSignal < 2000) return;
          process.stderr.write(`edgegate: ${signal} again; exiting without waiting for the drain\n`);
          process.exit(1);
        }
        firstSignal = Date.now();
        gw.drain(drain)
          .then(() => gw.stop())
          .then(() => process.exit(0), fail);
      };
      process.on('SIGTERM', () => shutdown('SIGTERM'));
      process.on('SIGINT', () => shutdown('SIGINT'));
    } catch (err) {
      fail(err);
    }
  });

async function readRoutesArg(paths: string[]): Promise<RouteSource[]> {
  const out: RouteSource[] = [];
  const source = (p: string) => new FileRouteSource(p, createLogger('error'));
  for (const p of paths) {
    const st = await stat(p).catch(() => {
      throw new ConfigError(`${p}: no such file or directory`);
    });
    if (st.isDirectory()) out.push(...(await source(p).read()));
    else out.push(...(await readRouteFile(p)));
  }
  return out;
}

for (const option of edgeOptions()) runCommand.addOption(option);

/** Listener and proxy settings from the edge flags. */
function edgeSettingsOf(o: Record<string, unknown>) {
  const { listener, proxy } = edgeSettingsFrom(o, parseDurationFlag);
  const from = proxyProtocolSourcesFrom(
    o.proxyProtocol as string | undefined,
    listener.proxyProtocolTimeoutMs,
  );
  return {
    listenerSettings: from.length > 0 ? { ...listener, proxyProtocolFrom: from } : listener,
    proxySettings: proxy,
  };
}

program
  .command('validate')
  .description('check GatewayRoute files; exit 1 listing every error')
  .argument('<files...>', 'YAML files or directories')
  .action(async (files: string[]) => {
    try {
      const routes = await readRoutesArg(files);
      const { statuses } = compile({ routes, catalog: { localDatacenter: 'dc1', datacenters: {} } });
      const problems = statuses.filter((s) => !s.accepted).flatMap(describeStatus);
      for (const line of problems) process.stdout.write(`${line}\n`);
      if (problems.length > 0) {
        process.stdout.write(
          `${problems.length} error(s) in ${statuses.filter((s) => !s.accepted).length} of ${statuses.length} route(s)\n`,
        );
        process.exit(1);
      }
      process.stdout.write(`${statuses.length} route(s) valid in ${files.length} path(s)\n`);
    } catch (err) {
      // A YAML syntax error already reads file:line: message.
      process.stdout.write(`${(err as Error).message}\n`);
      process.exit(1);
    }
  });

program
  .command('routes')
  .description('print the routing table compiled from routes and a catalog')
  .addOption(
    new Option('--routes <path>', 'GatewayRoute YAML file or directory')
      .env('EDGEGATE_ROUTES')
      .makeOptionMandatory(),
  )
  .addOption(new Option('--catalog <file>', 'service catalog YAML file').env('EDGEGATE_CATALOG'))
  .addOption(new Option('--datacenter <name>', 'local datacenter').env('EDGEGATE_DATACENTER'))
  .option('--json', 'print JSON (table and statuses)')
  .action(async (o) => {
    try {
      const routes = await readRoutesArg([o.routes]);
      const catalog = o.catalog
        ? await readCatalogFile(o.catalog, o.datacenter)
        : { localDatacenter: o.datacenter ?? 'dc1', datacenters: {} };
      const { table, statuses } = compile({ routes, catalog });
      if (o.json) {
        process.stdout.write(`${JSON.stringify({ table, statuses }, null, 2)}\n`);
        return;
      }
      process.stdout.write(formatTable(table));
      for (const s of statuses) for (const line of describeStatus(s)) process.stdout.write(`! ${line}\n`);
    } catch (err) {
      fail(err);
    }
  });

program
  .command('migrate')
  .description(
    'print the GatewayRoutes equivalent to Ingress YAML (files, or stdin with none or "-"), with a comment for each annotation not carried over',
  )
  .argument('[files...]', 'YAML files with Ingress documents')
  .action(async (files: string[]) => {
    try {
      const inputs = [];
      for (const f of files.length > 0 ? files : ['-']) {
        if (f === '-') {
          const chunks: Buffer[] = [];
          for await (const c of process.stdin) chunks.push(c as Buffer);
          inputs.push({ name: 'stdin', text: Buffer.concat(chunks).toString('utf8') });
        } else inputs.push({ name: f, text: readFileSync(f, 'utf8') });
      }
      const r = migrateIngressYaml(inputs);
      process.stdout.write(r.output);
      process.stderr.write(
        `${r.ingresses} Ingress(es) → ${r.routes} GatewayRoute(s); ${r.notes} annotation(s) not carried over\n`,
      );
      if (r.invalid > 0) process.exit(1);
    } catch (err) {
      process.stdout.write(`${(err as Error).message}\n`);
      process.exit(1);
    }
  });

program
  .command('echo')
  .description('a small upstream answering with JSON of what it received (demos, tests, benchmarks)')
  .addOption(new Option('--listen <addr>', 'address').env('EDGEGATE_ECHO_LISTEN').default('127.0.0.1:9001'))
  .addOption(
    new Option('--name <name>', 'name reported in every answer').env('EDGEGATE_ECHO_NAME').default('echo'),
  )
  .action((o) => {
    try {
      const { host, port } = parseListen(o.listen, '--listen');
      const server = createEchoServer({ name: o.name });
      server.on('error', fail);
      server.listen({ host, port }, () => {
        process.stdout.write(`echo ${o.name} listening on ${o.listen}\n`);
      });
      const stop = () => server.close(() => process.exit(0));
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    } catch (err) {
      fail(err);
    }
  });

await program.parseAsync(process.argv);
