/**
 * Upstream connection opens and failures, from undici's diagnostics channels (`undici:client:connected`,
 * `undici:client:connectError`). These fire once per TCP connection attempt, never per request, and need no
 * listener on each Pool. Only connection-level channels are subscribed: a subscriber on the `undici:request:*`
 * channels would make undici do extra work for every request.
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import type { TrafficRecorder } from './traffic-recorder.ts';

interface ConnectMessage {
  connectParams?: { hostname?: string; port?: string | number; protocol?: string };
}

function portOf(p: ConnectMessage['connectParams']): string {
  const port = p?.port;
  if (port !== undefined && port !== '') return String(port);
  return p?.protocol === 'https:' ? '443' : '80';
}

/** Counts connection events into the recorder; returns the unsubscribe function. */
export function watchUpstreamConnections(recorder: TrafficRecorder): () => void {
  const connected = diagnosticsChannel.channel('undici:client:connected');
  const failed = diagnosticsChannel.channel('undici:client:connectError');
  // The raw HTTP/1.1 pool (proxy/raw-pool.ts) publishes the same messages on its own channels.
  const rawConnected = diagnosticsChannel.channel('edgegate:raw-pool:connected');
  const rawFailed = diagnosticsChannel.channel('edgegate:raw-pool:connectError');
  const onConnected = (m: unknown) => {
    const p = (m as ConnectMessage).connectParams;
    if (p?.hostname) recorder.connectionOpened(p.hostname, portOf(p));
  };
  const onFailed = (m: unknown) => {
    const p = (m as ConnectMessage).connectParams;
    if (p?.hostname) recorder.connectionFailed(p.hostname, portOf(p));
  };
  connected.subscribe(onConnected);
  failed.subscribe(onFailed);
  rawConnected.subscribe(onConnected);
  rawFailed.subscribe(onFailed);
  return () => {
    connected.unsubscribe(onConnected);
    failed.unsubscribe(onFailed);
    rawConnected.unsubscribe(onConnected);
    rawFailed.unsubscribe(onFailed);
  };
}
