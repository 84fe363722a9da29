/** The pinned, built helm, isolated from the user's helm config and cache. */
import { join } from 'node:path';
import { binPath } from './bins.ts';
import { type CommandResult, runCommand } from './proc.ts';
import { makeTempDir } from './tmp.ts';

let helmHome: string | undefined;

export interface HelmOptions {
  /** Sets --kubeconfig (e.g. KubeInfo.kubeconfigPath). */
  kubeconfig?: string;
  /** Return a failed result instead of throwing (default false). */
  allowFailure?: boolean;
  timeoutMs?: number;
}

/** Runs `helm <args>` with HELM_{CACHE,CONFIG,DATA}_HOME in a temp dir of this process. */
export async function helm(args: string[], opts: HelmOptions = {}): Promise<CommandResult> {
  helmHome ??= makeTempDir('helm-home');
  const env = {
    ...process.env,
    HELM_CACHE_HOME: join(helmHome, 'cache'),
    HELM_CONFIG_HOME: join(helmHome, 'config'),
    HELM_DATA_HOME: join(helmHome, 'data'),
  };
  const full = [...(opts.kubeconfig ? ['--kubeconfig', opts.kubeconfig] : []), ...args];
  const res = await runCommand(binPath('helm'), full, { env, timeoutMs: opts.timeoutMs ?? 120_000 });
  if (res.code !== 0 && !opts.allowFailure) {
    throw new Error(`helm ${args.join(' ')} failed (exit ${res.code}):\n${res.stderr}${res.stdout}`);
  }
  return res;
}
