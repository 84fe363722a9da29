/**
 * `--consul` for `edgegate run`: on when given, or when CONSUL_HTTP_ADDR is set and no `--catalog` file is;
 * `--consul` with `--catalog` is refused (two catalogs would fight over one snapshot).
 */
import { ConfigError } from '../../../lib/errors.ts';
import {
  type ConsulSettings,
  ConsulSettingsError,
  consulSettingsFromEnv,
  meshServiceName,
} from './settings.ts';

export function consulOption(
  o: { consul?: boolean | string; catalog?: string; datacenter?: string; consulMeshService?: string },
  env: Record<string, string | undefined>,
): ConsulSettings | undefined {
  const flag = o.consul === true || o.consul === 'true' || o.consul === '1';
  if (flag && o.catalog)
    throw new ConfigError('--consul and --catalog cannot be used together: pick one catalog');
  const on = flag || (!o.catalog && Boolean(env.CONSUL_HTTP_ADDR?.trim()));
  if (!on) return undefined;
  try {
    const overrides: Partial<ConsulSettings> = o.datacenter ? { datacenter: o.datacenter } : {};
    if (o.consulMeshService !== undefined)
      overrides.meshService = meshServiceName(o.consulMeshService, '--consul-mesh-service');
    return consulSettingsFromEnv(env, overrides);
  } catch (err) {
    if (err instanceof ConsulSettingsError) throw new ConfigError(err.message);
    throw err;
  }
}
