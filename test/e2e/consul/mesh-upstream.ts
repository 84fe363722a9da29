/**
 * A Consul Connect-native test upstream: an HTTPS server on loopback that presents its own leaf certificate from
 * the agent (`/v1/agent/connect/ca/leaf/<identity>`), trusts only the Consul CA roots, requires a client
 * certificate, and answers with the client's URI SAN and certificate serial. `refresh()` re-reads the leaf and
 * roots (after a CA rotation) and closes the open connections, so the next ones use the new certificates.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { ConsulClient } from '../../support/consul.ts';

export interface MeshUpstream {
  port: number;
  server: Server;
  /** Serial of the leaf the server presents now. */
  serial: string;
  refresh(): Promise<void>;
  close(): Promise<void>;
}

interface Leaf {
  CertPEM: string;
  PrivateKeyPEM: string;
  SerialNumber: string;
}

export async function meshMaterial(
  agent: ConsulClient,
  identity: string,
): Promise<{ leaf: Leaf; roots: string[]; activeRootId: string; trustDomain: string }> {
  const leaf = await agent.json<Leaf>(`/v1/agent/connect/ca/leaf/${identity}`);
  const r = await agent.json<{
    ActiveRootID: string;
    TrustDomain: string;
    Roots: { RootCert: string; IntermediateCerts: string[] | null }[];
  }>('/v1/agent/connect/ca/roots');
  const roots = r.Roots.flatMap((x) => [x.RootCert, ...(x.IntermediateCerts ?? [])]);
  return { leaf, roots, activeRootId: r.ActiveRootID, trustDomain: r.TrustDomain };
}

/** `identity`: the service whose leaf the server presents (the wrong one for an impostor). */
export async function startMeshUpstream(
  agent: ConsulClient,
  identity: string,
  name: string,
): Promise<MeshUpstream> {
  let m = await meshMaterial(agent, identity);
  const server = createServer(
    {
      cert: m.leaf.CertPEM,
      key: m.leaf.PrivateKeyPEM,
      ca: m.roots,
      requestCert: true,
      rejectUnauthorized: true,
    },
    (req, res) => {
      const peer = (req.socket as TLSSocket).getPeerCertificate();
      const body = JSON.stringify({
        name,
        url: req.url,
        clientSan: peer.subjectaltname ?? '',
        clientSerial: peer.serialNumber ?? '',
      });
      res.writeHead(200, { 'content-type': 'application/json', 'x-echo-name': name });
      res.end(body);
    },
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const up: MeshUpstream = {
    port: (server.address() as AddressInfo).port,
    server,
    serial: m.leaf.SerialNumber,
    async refresh() {
      m = await meshMaterial(agent, identity);
      server.setSecureContext({ cert: m.leaf.CertPEM, key: m.leaf.PrivateKeyPEM, ca: m.roots });
      up.serial = m.leaf.SerialNumber;
      server.closeAllConnections();
    },
    async close() {
      server.closeAllConnections();
      server.close();
    },
  };
  return up;
}

/** Registers a Connect-native instance (`Connect: { Native: true }`) at the upstream's port. */
export async function registerNative(
  agent: ConsulClient,
  id: string,
  service: string,
  port: number,
): Promise<void> {
  await agent.json('/v1/agent/service/register', {
    method: 'PUT',
    body: JSON.stringify({
      ID: id,
      Name: service,
      Address: '127.0.0.1',
      Port: port,
      Connect: { Native: true },
    }),
  });
}
