/**
 * Every secret the test helpers have handled in this process (one test file): passwords, client
 * secrets, authorization codes, PKCE verifiers, tokens, and users' emails. `startTestVeil`'s
 * `stop()` scans the Veil's log lines for all of them, so every flow any test drives through the
 * helpers is also a check that Veil's logs stay clean.
 */

/** value → what it is ("password", "access token", ...), for the error message. */
const seen = new Map<string, string>();

/** Remembers a secret; anything that is not a string of at least 8 characters is ignored. */
export function rememberSecret(value: unknown, kind = 'secret'): void {
  if (typeof value === 'string' && value.length >= 8 && !seen.has(value)) seen.set(value, kind);
}

/** Remembers the values under these keys anywhere in a JSON body (request or response). */
export function rememberFields(body: unknown, keys: readonly string[]): void {
  if (!body || typeof body !== 'object') return;
  for (const [k, v] of Object.entries(body)) {
    if (keys.includes(k)) rememberSecret(v, k);
    else rememberFields(v, keys);
  }
}

/** Remembers the tokens of a token endpoint response. */
export function rememberTokens(body: unknown): void {
  rememberFields(body, ['access_token', 'refresh_token', 'id_token']);
}

export function secretsSeen(): string[] {
  return [...seen.keys()];
}

/** Shown instead of a secret: enough to recognise it, not enough to use it. */
const preview = (value: string) => `${value.slice(0, 6)}…`;

/** The forms a secret could take in a log line: as is, JSON-escaped, URL-encoded, and for JWTs/JWEs each long part. */
function needles(value: string, kind: string): Array<{ needle: string; kind: string }> {
  const forms = new Set([value, JSON.stringify(value).slice(1, -1), encodeURIComponent(value), new URLSearchParams({ v: value }).toString().slice(2)]);
  const out = [...forms].map((needle) => ({ needle, kind }));
  const parts = value.split('.');
  if ((parts.length === 3 || parts.length === 5) && parts.every((p) => /^[\w-]*$/.test(p))) {
    for (const part of parts) if (part.length > 20) out.push({ needle: part, kind: `${kind} (a part of it)` });
  }
  return out;
}

export interface Leak {
  kind: string;
  /** The log line's `msg` (or a note for output that is not a JSON log line), the secret masked. */
  msg: string;
  secret: string;
}

/** Which remembered secrets appear in these log lines, and where. */
export function leaksIn(logs: readonly string[]): Leak[] {
  const lines = logs.flatMap((chunk) => chunk.split('\n')).filter((l) => l.trim());
  const all = lines.join('\n');
  const leaks: Leak[] = [];
  for (const [value, kind] of seen) {
    for (const { needle, kind: what } of needles(value, kind)) {
      if (!all.includes(needle)) continue;
      for (const line of lines.filter((l) => l.includes(needle))) {
        let msg = '(output that is not a JSON log line)';
        try {
          const parsed = JSON.parse(line) as { msg?: unknown };
          if (typeof parsed.msg === 'string') msg = parsed.msg.replaceAll(needle, preview(needle));
        } catch {
          // not pino output: keep the note
        }
        leaks.push({ kind: what, msg, secret: preview(needle) });
      }
    }
  }
  return leaks;
}

/** Throws when any remembered secret appears in the log lines, naming what leaked and where (never the secret). */
export function assertNoSecretsLogged(logs: readonly string[]): void {
  const leaks = leaksIn(logs);
  if (!leaks.length) return;
  const listed = [...new Set(leaks.map((l) => `  ${l.kind} ${JSON.stringify(l.secret)} in the log line with msg ${JSON.stringify(l.msg)}`))];
  throw new Error(`Veil's logs contain ${leaks.length} secret(s) the tests used:\n${listed.join('\n')}`);
}
