/** `npm run demo:api`: reads the environment and starts the demo API (see docs/RESOURCE_SERVERS.md). */
import { startDemoApi, type DemoApiOptions } from './app.js';

function fromEnv(env: NodeJS.ProcessEnv): DemoApiOptions {
  const port = Number(env.DEMO_API_PORT || 4000);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error('DEMO_API_PORT must be a port number');
  const clientId = env.DEMO_API_INTROSPECTION_CLIENT_ID;
  const clientSecret = env.DEMO_API_INTROSPECTION_CLIENT_SECRET;
  if (Boolean(clientId) !== Boolean(clientSecret)) {
    throw new Error('set both DEMO_API_INTROSPECTION_CLIENT_ID and DEMO_API_INTROSPECTION_CLIENT_SECRET, or neither');
  }
  return {
    port,
    host: env.DEMO_API_HOST || 'localhost',
    issuer: env.VEIL_ISSUER || 'http://localhost:3000',
    identifier: env.DEMO_API_IDENTIFIER || 'http://localhost:4000',
    keyFile: env.DEMO_API_KEY_FILE || '.veil-data/demo-api-key.json',
    scope: env.DEMO_API_SCOPE || 'read',
    ...(env.DEMO_API_PUBLIC_ORIGIN && { publicOrigin: env.DEMO_API_PUBLIC_ORIGIN }),
    ...(clientId && clientSecret && { introspection: { clientId, clientSecret } }),
  };
}

try {
  const api = await startDemoApi(fromEnv(process.env));
  const stop = () => void api.close().then(() => process.exit(0));
  process.once('SIGINT', stop).once('SIGTERM', stop);
} catch (err) {
  console.error(`demo API failed to start: ${(err as Error).message}`);
  process.exit(1);
}
