// `--status-write-rate` (EDGEGATE_STATUS_WRITE_RATE, chart kubernetes.statusWriteRate): a positive number of
// writes per second; anything else is refused naming the flag.
import { describe, expect, it } from 'vitest';
import { kubeOptionsFrom } from '../../../../../src/control/kube-flags.ts';
import { ConfigError } from '../../../../../src/lib/errors.ts';

describe('kube flags', () => {
  it('--status-write-rate takes writes per second', () => {
    expect(kubeOptionsFrom({ statusWriteRate: '250' }).statusQps).toBe(250);
    expect(kubeOptionsFrom({ statusWriteRate: '0.5' }).statusQps).toBe(0.5);
    expect(kubeOptionsFrom({}).statusQps).toBeUndefined();
  });

  it.each(['0', '-5', 'fast', '1e3', '20000', ' '])('refuses --status-write-rate %j', (value) => {
    expect(() => kubeOptionsFrom({ statusWriteRate: value })).toThrow(ConfigError);
    expect(() => kubeOptionsFrom({ statusWriteRate: value })).toThrow(
      /--status-write-rate: expected writes per second/,
    );
  });
});
