/** The real-server test harness. See test/support/README.md. */
export {
  allBinariesPresent,
  type BinaryName,
  binDir,
  binPath,
  type PinnedVersions,
  pinnedVersions,
} from './bins.ts';
export {
  allocateConsulPorts,
  type ConsulAclOptions,
  type ConsulAgent,
  type ConsulAgentInfo,
  type ConsulAgentOptions,
  type ConsulClient,
  type ConsulPair,
  type ConsulPairOptions,
  type ConsulPorts,
  consulClient,
  startConsulAgent,
  startConsulPair,
} from './consul.ts';
export { HAPROXY, type Haproxy, type HaproxyFrontend, startHaproxy } from './haproxy.ts';
export { type HelmOptions, helm } from './helm.ts';
export {
  type KubeClient,
  type KubectlOptions,
  type KubeInfo,
  type KubeResponse,
  type KubeServer,
  kubeClient,
  type StartKubeOptions,
  startKube,
  waitCrdsEstablished,
} from './kube.ts';
export { consulLogs, kubeLogs, type LogSource, printLogsOnFailure } from './logs.ts';
export {
  buildNodeImages,
  type NodeImage,
  type NodeImages,
  type NodeInfo,
  type RealNode,
  startNode,
} from './node.ts';
export { type NodeClient, nodeClient, sharedNode } from './node-client.ts';
export {
  createSandbox,
  leftovers,
  type Sandbox,
  type SandboxRecord,
  sweepStaleSandboxes,
  wrapInSandbox,
} from './node-sandbox.ts';
export { type FreePortOptions, freePort, freePorts, isPortFree } from './ports.ts';
export {
  type CommandResult,
  type ExitInfo,
  formatTail,
  type ManagedProcess,
  type ProcessSpec,
  type RunOptions,
  runCommand,
  startProcess,
  tailFile,
} from './proc.ts';
export { REDIS_SERVER, type RedisServer, startRedis } from './redis.ts';
export { type SharedConsulPair, type SharedConsulPairInfo, sharedConsulPair, sharedKube } from './shared.ts';
export { logDir, logPathFor, makeTempDir, removeDir } from './tmp.ts';
export { errorText, isPortClash, retryOnPortClash, StopWaiting, type WaitOptions, waitFor } from './wait.ts';
