/**
 * Express (or Connect, or plain node:http) middleware: rejects requests without a valid access
 * token, else sets `req.accessToken`. Typed against node:http so express stays optional.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { authenticateBearer, normalizeOrigin, normalizeScopes, type RequireAccessTokenOptions } from './bearer.js';
import type { AccessTokenVerifier, VerifiedAccessToken } from './verifier.js';

/** `originalUrl` is Express's (the path before mounting stripped it); plain node:http has only `url`. */
export type AccessTokenRequest = IncomingMessage & { accessToken?: VerifiedAccessToken; originalUrl?: string };

export type NodeMiddleware = (req: AccessTokenRequest, res: ServerResponse, next: (err?: unknown) => void) => void;

declare global {
  // Types `req.accessToken` for Express users; harmless where @types/express is absent.
  namespace Express {
    interface Request {
      accessToken?: VerifiedAccessToken;
    }
  }
}

export function requireAccessToken(verifier: AccessTokenVerifier, options: RequireAccessTokenOptions = {}): NodeMiddleware {
  const scopes = normalizeScopes(options.scopes);
  const origin = normalizeOrigin(options.publicOrigin);
  return (req, res, next) => {
    const path = req.originalUrl ?? req.url ?? '/';
    const base = origin ?? `${(req.socket as TLSSocket).encrypted ? 'https' : 'http'}://${req.headers.host ?? 'localhost'}`;
    // Concatenated, not resolved: a path like //host/x must not change the origin.
    const url = URL.parse(`${base}${path}`);
    const dpop = req.headers.dpop;
    authenticateBearer(verifier, req.headers.authorization, scopes, url ? { method: req.method ?? 'GET', url, dpop: typeof dpop === 'string' ? dpop : undefined } : undefined).then(
      (outcome) => {
        if (outcome.ok) {
          req.accessToken = outcome.accessToken;
          next();
          return;
        }
        res.statusCode = outcome.status;
        for (const [name, value] of Object.entries(outcome.headers)) res.setHeader(name, value);
        res.setHeader('content-type', 'application/json; charset=utf-8');
        res.end(JSON.stringify(outcome.body));
      },
      next,
    );
  };
}
