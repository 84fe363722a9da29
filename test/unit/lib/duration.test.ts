import { describe, expect, it } from 'vitest';
import { DurationError, isDuration, parseDuration, parseDurationSetting } from '../../../src/lib/duration.ts';

describe('one duration syntax', () => {
  it('reads the Gateway API form', () => {
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('5s')).toBe(5000);
    expect(parseDuration('1m30s')).toBe(90_000);
    expect(parseDuration('1h2m3s4ms')).toBe(3_723_004);
    expect(parseDurationSetting(' 30s ', '--x')).toBe(30_000);
    expect(parseDurationSetting('0', '--x')).toBe(0);
  });

  it('refuses a bare number other than 0, naming the setting and the units to write', () => {
    expect(() => parseDurationSetting('5', '--drain-delay')).toThrow(DurationError);
    expect(() => parseDurationSetting('5', '--drain-delay')).toThrow(
      /--drain-delay: invalid duration "5" \(a bare number has no unit: write 5s or 5ms\)/,
    );
  });

  it('refuses what is not of the form', () => {
    for (const bad of ['', 's', '1.5s', '-1s', '5 s', '1d', '1s1s1s1s1s', '123456s', 'ms5'])
      expect(isDuration(bad), bad).toBe(false);
    expect(() => parseDurationSetting('1.5s', 'EDGEGATE_CONSUL_WAIT')).toThrow(/EDGEGATE_CONSUL_WAIT/);
  });
});
