/**
 * What a key file is, decided once when it is read: a shared secret (HMAC) or a public key (RSA, EC, EdDSA) —
 * never both. The type of the material decides which algorithms it verifies: an HS* algorithm (and the HMAC
 * request signature) only ever gets a secret, so a public key, a certificate or a PKCS#1 file in a key set can
 * never serve as an HMAC key (the JWT "key confusion" attack: an HS256 token MACed with the public file).
 *
 * Anything that parses as public-key material is public, whatever its encoding: PEM (`PUBLIC KEY`,
 * `RSA PUBLIC KEY`, `CERTIFICATE`), DER (SPKI, PKCS#1, X.509), a JWK of kty RSA/EC/OKP, an OpenSSH public key.
 * A file that mixes kinds or is ambiguous is refused with a reason instead of being guessed at: several PEM
 * blocks, text around a PEM block, a PEM block that does not parse, a private key, a JWK Set, a JWK with the
 * fields of two key types or whose `kid` is not its file name, JSON that is not a JWK.
 */
import {
  createPrivateKey,
  createPublicKey,
  type JsonWebKeyInput,
  type KeyObject,
  X509Certificate,
} from 'node:crypto';

export type KeyMaterial =
  | { kind: 'secret'; secret: Uint8Array; alg: string | undefined }
  | {
      kind: 'public';
      key: KeyObject;
      /** `rsa`, `rsa-pss`, `ec`, `ed25519`, `ed448`. */
      keyType: string;
      /** Where it came from, for messages: `PEM PUBLIC KEY`, `DER certificate`, `JWK`, … */
      source: string;
      alg: string | undefined;
    };

export type Classified = KeyMaterial | { kind: 'refused'; error: string };

const PEM_BEGIN = /-----BEGIN ([A-Z0-9 ]+)-----/g;
const PUBLIC_PEM_LABELS = new Set(['PUBLIC KEY', 'RSA PUBLIC KEY', 'CERTIFICATE']);
const SSH_PUBLIC = /^(ssh-(rsa|dss|ed25519|ed448)|ecdsa-sha2-[a-z0-9]+|sk-(ssh|ecdsa)[a-z0-9@.-]*) /;
const JWK_TYPES = new Set(['oct', 'RSA', 'EC', 'OKP']);
const PRIVATE_JWK_FIELDS = ['d', 'p', 'q', 'dp', 'dq', 'qi'];

function publicOf(key: KeyObject, source: string, alg?: string): Classified {
  const keyType = key.asymmetricKeyType;
  if (!keyType || !['rsa', 'rsa-pss', 'ec', 'ed25519', 'ed448'].includes(keyType))
    return { kind: 'refused', error: `${source}: unsupported key type ${keyType ?? 'unknown'}` };
  return { kind: 'public', key, keyType, source, alg };
}

function classifyPem(text: string): Classified {
  const labels = [...text.matchAll(PEM_BEGIN)].map((m) => m[1]!);
  if (labels.length !== 1)
    return {
      kind: 'refused',
      error: `holds ${labels.length} PEM blocks (${labels.join(', ')}); a key file holds exactly one key`,
    };
  const label = labels[0]!;
  const start = text.indexOf('-----BEGIN');
  const endMarker = `-----END ${label}-----`;
  const end = text.indexOf(endMarker);
  if (end < 0) return { kind: 'refused', error: `PEM block ${label} has no end line` };
  if (text.slice(0, start).trim() !== '' || text.slice(end + endMarker.length).trim() !== '')
    return { kind: 'refused', error: `text around the PEM block ${label}; a key file holds exactly one key` };
  if (label.includes('PRIVATE'))
    return {
      kind: 'refused',
      error: `a private key (${label}); a verification key set holds public keys or shared secrets`,
    };
  if (!PUBLIC_PEM_LABELS.has(label)) return { kind: 'refused', error: `unsupported PEM block ${label}` };
  const pem = text.slice(start, end + endMarker.length);
  try {
    const key = label === 'CERTIFICATE' ? new X509Certificate(pem).publicKey : createPublicKey(pem);
    return publicOf(key, `PEM ${label}`);
  } catch (err) {
    return { kind: 'refused', error: `PEM ${label} does not parse: ${(err as Error).message}` };
  }
}

function classifyJwk(text: string, kid: string): Classified {
  let jwk: Record<string, unknown>;
  try {
    jwk = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return { kind: 'refused', error: 'starts like JSON but is not valid JSON (a JWK was expected)' };
  }
  if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk))
    return { kind: 'refused', error: 'JSON that is not a JWK object' };
  if (Array.isArray(jwk.keys))
    return { kind: 'refused', error: 'a JWK Set; a key file holds exactly one JWK (named by its kid)' };
  const kty = jwk.kty;
  if (typeof kty !== 'string' || !JWK_TYPES.has(kty))
    return { kind: 'refused', error: `JWK kty ${JSON.stringify(kty)} is not oct, RSA, EC or OKP` };
  if (jwk.kid !== undefined && jwk.kid !== kid)
    return { kind: 'refused', error: `JWK kid ${JSON.stringify(jwk.kid)} differs from its file name` };
  const foreign = (kty === 'oct' ? ['n', 'e', 'x', 'y', 'crv'] : ['k']).filter((f) => jwk[f] !== undefined);
  if (foreign.length > 0)
    return {
      kind: 'refused',
      error: `JWK of kty ${kty} also has ${foreign.join(', ')} (mixed key material)`,
    };
  const alg = typeof jwk.alg === 'string' ? jwk.alg : undefined;
  if (kty === 'oct') {
    if (typeof jwk.k !== 'string' || !/^[A-Za-z0-9_-]+$/.test(jwk.k))
      return { kind: 'refused', error: 'JWK of kty oct needs k (base64url)' };
    return { kind: 'secret', secret: new Uint8Array(Buffer.from(jwk.k, 'base64url')), alg };
  }
  if (PRIVATE_JWK_FIELDS.some((f) => jwk[f] !== undefined))
    return {
      kind: 'refused',
      error: 'a private JWK; a verification key set holds public keys or shared secrets',
    };
  try {
    return publicOf(createPublicKey({ key: jwk, format: 'jwk' } as JsonWebKeyInput), 'JWK', alg);
  } catch (err) {
    return { kind: 'refused', error: `JWK does not parse: ${(err as Error).message}` };
  }
}

/** Public-key (or private-key) material in DER, or undefined. Private first: Node derives a public key from one. */
function classifyDer(bytes: Buffer): Classified | undefined {
  for (const type of ['pkcs8', 'pkcs1', 'sec1'] as const) {
    try {
      createPrivateKey({ key: bytes, format: 'der', type });
      return {
        kind: 'refused',
        error: 'a private key (DER); a verification key set holds public keys or shared secrets',
      };
    } catch {
      // not this encoding
    }
  }
  for (const type of ['spki', 'pkcs1'] as const) {
    try {
      return publicOf(createPublicKey({ key: bytes, format: 'der', type }), `DER ${type.toUpperCase()}`);
    } catch {
      // not this encoding
    }
  }
  try {
    return publicOf(new X509Certificate(bytes).publicKey, 'DER certificate');
  } catch {
    // not a certificate
  }
  return undefined;
}

/** Classifies the content of the key file `kid`. */
export function classifyKey(bytes: Buffer, kid: string): Classified {
  if (bytes.length === 0) return { kind: 'refused', error: 'empty file' };
  const text = bytes.toString('latin1');
  if (text.includes('-----BEGIN') || text.includes('-----END')) return classifyPem(text);
  const bom = text.startsWith('\xEF\xBB\xBF') ? 3 : 0;
  const trimmed = text.slice(bom).trim();
  if (trimmed.startsWith('{')) return classifyJwk(bytes.subarray(bom).toString('utf8'), kid);
  if (SSH_PUBLIC.test(trimmed))
    return { kind: 'refused', error: 'an OpenSSH public key; write it as PEM (-----BEGIN PUBLIC KEY-----)' };
  const der = classifyDer(bytes);
  if (der) return der;
  return { kind: 'secret', secret: new Uint8Array(bytes), alg: undefined };
}

/** The key type an algorithm needs: `secret`, or the asymmetric key types that can verify it. */
export function keyTypesFor(alg: string): readonly string[] {
  if (alg.startsWith('HS')) return ['secret'];
  if (alg.startsWith('RS')) return ['rsa'];
  if (alg.startsWith('PS')) return ['rsa', 'rsa-pss'];
  if (alg.startsWith('ES')) return ['ec'];
  if (alg === 'EdDSA' || alg === 'Ed25519') return ['ed25519', 'ed448'];
  return [];
}

/** Why `material` may not verify `alg`, or undefined when it may. */
export function keyRefusesAlgorithm(material: KeyMaterial, alg: string): string | undefined {
  const type = material.kind === 'secret' ? 'secret' : material.keyType;
  if (!keyTypesFor(alg).includes(type))
    return material.kind === 'secret'
      ? `a shared secret cannot verify ${alg}`
      : `a ${material.source} (${material.keyType}) cannot verify ${alg}`;
  if (material.alg !== undefined && material.alg !== alg) return `the key is for ${material.alg}, not ${alg}`;
  return undefined;
}
