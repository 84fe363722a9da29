import { describe, expect, it } from 'vitest';
import { describeError } from '../../../../../src/control/sources/kube/kube-source.ts';

const status = {
  kind: 'Status',
  apiVersion: 'v1',
  status: 'Failure',
  message:
    'endpointslices.discovery.k8s.io is forbidden: User "system:serviceaccount:a:b" cannot list resource',
  reason: 'Forbidden',
  code: 403,
};

describe('describeError', () => {
  it('reads the API server Status out of client-node’s exception (body as JSON text)', () => {
    const err = Object.assign(new Error('HTTP-Code: 403\nMessage: Unknown API Status Code!\nBody: …'), {
      code: 403,
      body: JSON.stringify(status),
    });
    expect(describeError(err)).toBe(`403 Forbidden: ${status.message}`);
  });

  it('reads a Status body given as an object, with the code from the Status', () => {
    expect(
      describeError({ body: { ...status, code: 404, reason: 'NotFound', message: 'x not found' } }),
    ).toBe('404 NotFound: x not found');
  });

  it('falls back to code and message when the body is no Status', () => {
    expect(describeError(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }))).toBe(
      'ECONNRESET: socket hang up',
    );
    expect(describeError(Object.assign(new Error('bad gateway'), { code: 502, body: '<html>' }))).toBe(
      '502: bad gateway',
    );
    expect(describeError(Object.assign(new Error('odd'), { body: { kind: 'Status' } }))).toBe('odd');
    expect(describeError('plain')).toBe('plain');
  });
});
