/**
 * A real OpenTelemetry Collector (scripts/test-deps.sh builds it: OTLP receiver + file exporter) on a free loopback
 * port, writing every span it receives to a JSON-lines file; spans() reads them back flattened.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { binPath } from './bins.ts';
import { freePort } from './ports.ts';
import { type ManagedProcess, startProcess } from './proc.ts';
import { logPathFor, makeTempDir, removeDir } from './tmp.ts';
import { waitFor } from './wait.ts';

export interface CollectedSpan {
  traceId: string;
  spanId: string;
  /** '' for a root span. */
  parentSpanId: string;
  name: string;
  /** OTLP span kind: 1 internal, 2 server, 3 client. */
  kind: number;
  attributes: Record<string, string | number | boolean>;
  status: { code?: number; message?: string };
  resource: Record<string, string | number | boolean>;
}

export const SPAN_KIND = { INTERNAL: 1, SERVER: 2, CLIENT: 3 } as const;

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  boolValue?: boolean;
  doubleValue?: number;
}
interface OtlpAttr {
  key: string;
  value: OtlpValue;
}

function attrs(list: OtlpAttr[] | undefined): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const a of list ?? []) {
    const v = a.value;
    out[a.key] =
      v.stringValue ??
      (v.intValue !== undefined ? Number(v.intValue) : undefined) ??
      v.boolValue ??
      v.doubleValue ??
      '';
  }
  return out;
}

export interface OtelCollector {
  /** Base URL for --otlp-endpoint (http://127.0.0.1:PORT). */
  endpoint: string;
  port: number;
  process: ManagedProcess;
  spans(): CollectedSpan[];
  stop(): Promise<void>;
  /** Kill it outright (an outage). */
  kill(): Promise<void>;
}

export async function startOtelCollector(name = 'otelcol', port?: number): Promise<OtelCollector> {
  const dir = makeTempDir(`edgegate-${name}-`);
  const p = port ?? (await freePort({ udp: false }));
  const file = join(dir, 'spans.jsonl');
  const config = join(dir, 'config.yaml');
  writeFileSync(
    config,
    [
      'receivers:',
      '  otlp:',
      '    protocols:',
      '      http:',
      `        endpoint: 127.0.0.1:${p}`,
      'exporters:',
      '  file:',
      `    path: ${file}`,
      '    flush_interval: 100ms',
      'service:',
      '  telemetry:',
      '    metrics:',
      '      level: none',
      '  pipelines:',
      '    traces:',
      '      receivers: [otlp]',
      '      exporters: [file]',
      '',
    ].join('\n'),
  );
  const proc = startProcess({
    name,
    command: binPath('otelcol'),
    args: [`--config=${config}`],
    logPath: logPathFor(name),
  });
  await waitFor(
    () => {
      if (!proc.running()) throw new Error(`${name} exited; see ${proc.logPath}`);
      return readFileSync(proc.logPath, 'utf8').includes('Everything is ready');
    },
    { timeoutMs: 30_000, message: `${name} ready` },
  );
  return {
    endpoint: `http://127.0.0.1:${p}`,
    port: p,
    process: proc,
    spans() {
      if (!existsSync(file)) return [];
      const out: CollectedSpan[] = [];
      for (const line of readFileSync(file, 'utf8').split('\n')) {
        if (line.trim() === '') continue;
        const req = JSON.parse(line) as {
          resourceSpans?: {
            resource?: { attributes?: OtlpAttr[] };
            scopeSpans?: {
              spans?: {
                traceId: string;
                spanId: string;
                parentSpanId?: string;
                name: string;
                kind?: number;
                attributes?: OtlpAttr[];
                status?: { code?: number; message?: string };
              }[];
            }[];
          }[];
        };
        for (const rs of req.resourceSpans ?? []) {
          const resource = attrs(rs.resource?.attributes);
          for (const ss of rs.scopeSpans ?? [])
            for (const s of ss.spans ?? [])
              out.push({
                traceId: s.traceId,
                spanId: s.spanId,
                parentSpanId: s.parentSpanId ?? '',
                name: s.name,
                kind: s.kind ?? 0,
                attributes: attrs(s.attributes),
                status: s.status ?? {},
                resource,
              });
        }
      }
      return out;
    },
    async stop() {
      await proc.stop();
      removeDir(dir);
    },
    async kill() {
      proc.kill();
      await proc.exited;
    },
  };
}
