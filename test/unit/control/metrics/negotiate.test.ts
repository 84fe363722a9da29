/** /metrics content negotiation: OpenMetrics only when the scraper prefers it; the Prometheus text format otherwise. */
import { describe, expect, it } from 'vitest';
import { wantsOpenMetrics } from '../../../../src/control/metrics/negotiate.ts';

describe('wantsOpenMetrics', () => {
  it.each([
    [undefined, false],
    ['', false],
    ['*/*', false],
    ['text/plain', false],
    ['text/plain;version=0.0.4', false],
    ['application/openmetrics-text', true],
    ['application/openmetrics-text; version=1.0.0; charset=utf-8', true],
    // Prometheus 3's default scrape Accept header.
    [
      'application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1',
      true,
    ],
    ['text/plain;q=0.9,application/openmetrics-text;q=0.5', false],
    ['application/openmetrics-text;q=0', false],
    ['application/openmetrics-text;q=abc', false],
    ['application/json', false],
  ])('%s → %s', (accept, expected) => {
    expect(wantsOpenMetrics(accept)).toBe(expected);
  });
});
