/**
 * The access log's batching writer: lines are gathered and leave together (at the end of the event-loop turn, at 64 KiB, or on
 * close), one JSON object per line, long paths and hosts clipped; settings refuse credential headers.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  AccessLog,
  type AccessLogLine,
  accessLogSettings,
} from '../../../../src/dataplane/observe/access-log.ts';
import { waitFor } from '../../../support/wait.ts';

function line(requestId: string, path = '/x'): AccessLogLine {
  return {
    time: '2026-12-07T00:00:00.000Z',
    requestId,
    client: '127.0.0.1',
    method: 'GET',
    host: 'a.test',
    path,
    status: 200,
    bytesIn: 10,
    bytesOut: 20,
    durationMs: 1.5,
    upstream: '127.0.0.1:80',
    upstreamMs: 1,
    route: 'r',
    service: 's',
    datacenter: 'dc1',
    retries: 0,
  };
}

const logs: AccessLog[] = [];
afterEach(() => {
  for (const l of logs.splice(0)) l.close();
});

function collecting(): { log: AccessLog; writes: string[] } {
  const writes: string[] = [];
  const log = new AccessLog(accessLogSettings({}), (t) => writes.push(t));
  logs.push(log);
  return { log, writes };
}

describe('access log writer', () => {
  it('gathers the lines of a burst into one write, one JSON object per line', async () => {
    const { log, writes } = collecting();
    for (let i = 0; i < 5; i++) log.write(line(`id-${i}`));
    expect(writes).toEqual([]);
    await waitFor(() => writes.length > 0, { timeoutMs: 5000 });
    expect(writes.length).toBe(1);
    const parsed = writes[0]!
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as AccessLogLine);
    expect(parsed.map((p) => p.requestId)).toEqual(['id-0', 'id-1', 'id-2', 'id-3', 'id-4']);
    expect(parsed[0]).toMatchObject({ status: 200, route: 'r', bytesOut: 20 });
  });

  it('writes at once when 64 KiB are gathered, and what is left on close', () => {
    const { log, writes } = collecting();
    const long = `/${'p'.repeat(1000)}`;
    let n = 0;
    while (writes.length === 0 && n < 1000) log.write(line(`id-${n++}`, long));
    expect(writes.length).toBe(1);
    expect(writes[0]!.length).toBeGreaterThanOrEqual(64 * 1024);
    log.write(line('last'));
    log.close();
    expect(writes.length).toBe(2);
    expect(writes[1]).toContain('"requestId":"last"');
  });

  it('clips paths and hosts longer than 1,024 characters', () => {
    const { log, writes } = collecting();
    log.write({ ...line('long', `/${'a'.repeat(5000)}`), host: 'h'.repeat(3000) });
    log.close();
    const parsed = JSON.parse(writes[0]!) as AccessLogLine;
    expect(parsed.path.length).toBe(1025);
    expect(parsed.path.endsWith('…')).toBe(true);
    expect(parsed.host.length).toBe(1025);
  });

  it('refuses header names that may carry credentials, and non-names', () => {
    expect(() => accessLogSettings({ headers: 'authorization' })).toThrow(/--access-log-headers/);
    expect(() => accessLogSettings({ headers: 'x-api-key' })).toThrow(/credentials/);
    expect(() => accessLogSettings({ headers: 'bad name' })).toThrow(/not a header name/);
    expect(() => accessLogSettings({ sampleRate: 2 })).toThrow(/--access-log-sample/);
  });
});
