/**
 * HTTP Basic client credentials as OAuth sends them (RFC 6749 §2.3.1: form-urlencoded, then
 * base64), read by exactly the rules of oidc-provider's /token (lib/shared/client_auth.js), so
 * Veil's endpoints and the token throttle see the same client as /token does.
 */
import { VeilError } from '../errors/veil-error.js';

export class MalformedBasicCredentials extends VeilError {
  constructor(message: string) {
    super('invalid_input', message);
  }
}

/** Strict base64 with correct padding, as oidc-provider checks it. */
function isValidBase64(input: string): boolean {
  const match = /^([A-Za-z0-9+/]*)(={0,2})$/.exec(input);
  if (!match?.[1]) return false;
  const remainder = match[1].length % 4;
  if (!match[2]) return remainder !== 1;
  return (match[1].length + match[2].length) % 4 === 0 && match[2].length === 4 - remainder;
}

/** Printable ASCII only (RFC 6749 VSCHAR), after form-decoding. */
const NOT_VSCHAR = /[^\x20-\x7E]/;

function decodeFormComponent(value: string): string {
  const decoded = decodeURIComponent(value.replace(/\+/g, '%20'));
  if (NOT_VSCHAR.test(decoded)) throw new MalformedBasicCredentials('invalid character found');
  return decoded;
}

/**
 * Undefined without an Authorization header; MalformedBasicCredentials for anything but
 * well-formed Basic with a non-empty secret (oidc-provider answers those invalid_request).
 */
export function parseBasicCredentials(header: string | undefined): { id: string; secret: string } | undefined {
  if (header === undefined) return undefined;
  const parts = header.split(' ');
  if (parts.length !== 2 || parts[0]!.toLowerCase() !== 'basic' || !isValidBase64(parts[1]!)) {
    throw new MalformedBasicCredentials('invalid authorization header value format');
  }
  const decoded = Buffer.from(parts[1]!, 'base64').toString('utf8');
  const sep = decoded.indexOf(':');
  if (sep < 0) throw new MalformedBasicCredentials('invalid authorization header value format');
  let id: string;
  let secret: string;
  try {
    id = decodeFormComponent(decoded.slice(0, sep));
    secret = decodeFormComponent(decoded.slice(sep + 1));
  } catch {
    throw new MalformedBasicCredentials('client_id and client_secret in the authorization header are not properly encoded');
  }
  if (!secret) throw new MalformedBasicCredentials('client_secret must be provided in the Authorization header');
  return { id, secret };
}
