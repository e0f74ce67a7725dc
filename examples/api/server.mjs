// An API that accepts Veil's sealed access tokens, with @veil/resource-server as its only
// dependency: plain node:http, the SDK's node middleware, one protected route.
//
//   VEIL_ISSUER=http://localhost:3000 API_AUDIENCE=https://api.example.com \
//   API_DECRYPTION_JWKS='{"keys":[{…private JWK with kid…}]}' npm start
//
// PORT (default 4000; 0 picks a free one), HOST (default 127.0.0.1) and API_SCOPE (default read)
// are optional. Prints one line, `listening on <url>`, when ready.
import http from 'node:http';
import { createVerifier, expressRequireAccessToken } from '@veil/resource-server';

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`${name} is required`);
    process.exit(2);
  }
  return value;
}

const verifier = createVerifier({
  issuer: required('VEIL_ISSUER'),
  audience: required('API_AUDIENCE'),
  decryptionJwks: JSON.parse(required('API_DECRYPTION_JWKS')),
});
const requireToken = expressRequireAccessToken(verifier, { scopes: [process.env.API_SCOPE ?? 'read'] });

const json = (res, status, body) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));

const server = http.createServer((req, res) => {
  if (req.method !== 'GET' || new URL(req.url ?? '/', 'http://x').pathname !== '/api/hello') return json(res, 404, { error: 'not_found' });
  requireToken(req, res, (err) => {
    if (err) return json(res, 500, { error: 'server_error' });
    const { claims, scopes } = req.accessToken;
    json(res, 200, { message: `Hello, ${claims.sub}`, client_id: claims.client_id, scopes });
  });
});

const port = Number(process.env.PORT ?? 4000);
const host = process.env.HOST ?? '127.0.0.1';
server.listen(port, host, () => {
  const { port: actual } = server.address();
  console.log(`listening on http://${host.includes(':') ? `[${host}]` : host}:${actual}`);
});
for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => server.close(() => process.exit(0)));
