/**
 * Applies a policy pass to the upstream request headers (a flat [name, value, …] list): headers the policies own
 * (forwarded claims, copied auth headers) are removed whatever the client sent, then the policies' values added.
 */
import type { Pass } from './verdict.ts';

export function applyPassHeaders(headers: string[], pass: Pass): string[] {
  if (pass.strip.length === 0 && pass.add.length === 0) return headers;
  let out = headers;
  if (pass.strip.length > 0) {
    out = [];
    for (let i = 0; i < headers.length; i += 2) {
      if (pass.strip.includes(headers[i]!.toLowerCase())) continue;
      out.push(headers[i]!, headers[i + 1]!);
    }
  }
  for (const [n, v] of pass.add) out.push(n, v);
  return out;
}
