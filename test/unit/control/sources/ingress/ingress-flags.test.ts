import { describe, expect, it } from 'vitest';
import { kubeOptionsFrom } from '../../../../../src/control/kube-flags.ts';

describe('--ingress flags', () => {
  it('off unless --ingress; the publish list and the legacy class name', () => {
    expect(kubeOptionsFrom({}).ingress).toBeUndefined();
    expect(
      kubeOptionsFrom({
        ingress: true,
        ingressClass: 'edge',
        ingressPublishAddress: '192.0.2.1, lb.example.com',
      }).ingress,
    ).toEqual({
      publish: ['192.0.2.1', 'lb.example.com'],
      legacyClassName: 'edge',
    });
  });

  it('refuses a publish address that is neither an IP nor a DNS name, naming the flag', () => {
    expect(() => kubeOptionsFrom({ ingress: true, ingressPublishAddress: 'http://lb/' })).toThrow(
      /--ingress-publish-address: "http:\/\/lb\/"/,
    );
  });
});
