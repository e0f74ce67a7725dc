/**
 * Express (or Connect, or plain node:http) middleware: rejects requests without a valid access
 * token, else sets `req.accessToken`. Typed against node:http so express stays optional.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { authenticateBearer, normalizeScopes, type RequireAccessTokenOptions } from './bearer.js';
import type { AccessTokenVerifier, VerifiedAccessToken } from './verifier.js';

export type AccessTokenRequest = IncomingMessage & { accessToken?: VerifiedAccessToken };

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
  return (req, res, next) => {
    authenticateBearer(verifier, req.headers.authorization, scopes).then((outcome) => {
      if (outcome.ok) {
        req.accessToken = outcome.accessToken;
        next();
        return;
      }
      res.statusCode = outcome.status;
      for (const [name, value] of Object.entries(outcome.headers)) res.setHeader(name, value);
      res.setHeader('content-type', 'application/json; charset=utf-8');
      res.end(JSON.stringify(outcome.body));
    }, next);
  };
}
