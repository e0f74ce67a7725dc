/** HTTP Basic client credentials as OAuth sends them (RFC 6749 §2.3.1: form-urlencoded, then base64). */

export class MalformedBasicCredentials extends Error {
  override name = 'MalformedBasicCredentials';
}

const decodeFormComponent = (value: string) => decodeURIComponent(value.replace(/\+/g, ' '));

/** Undefined without an Authorization header; MalformedBasicCredentials for anything but well-formed Basic. */
export function parseBasicCredentials(header: string | undefined): { id: string; secret: string } | undefined {
  if (!header) return undefined;
  const match = /^basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!match) throw new MalformedBasicCredentials('malformed Authorization header');
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const sep = decoded.indexOf(':');
  if (sep < 0) throw new MalformedBasicCredentials('malformed Basic credentials');
  try {
    return { id: decodeFormComponent(decoded.slice(0, sep)), secret: decodeFormComponent(decoded.slice(sep + 1)) };
  } catch {
    throw new MalformedBasicCredentials('malformed Basic credentials');
  }
}
