# syntax=docker/dockerfile:1
#
# Veil: multi-stage image.
#   docker build -t veil .
#   docker run -p 3000:3000 -v veil-state:/var/lib/veil veil        # embedded stores (development)
# With PostgreSQL and Redis, see docker-compose.yml. Nothing here is exercised in CI, which has no
# Docker engine. The same steps were checked outside Docker.

ARG NODE_IMAGE=node:20-bookworm-slim

# ---- deps: every dependency (dev included), with argon2 compiled for this Node ----------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app

# The prebuilt binary in the argon2 package needs Node-API 10. Node 20 has Node-API 9, and loading
# that binary crashes the process (SIGSEGV), so argon2 is compiled from source here. The official
# node images ship the Node headers under /usr/local/include/node, so node-gyp downloads nothing.
# (On a Node image with Node-API 10 or later the prebuilt binary works; the rebuild is harmless.)
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
ENV npm_config_nodedir=/usr/local

COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would run the build before the sources are copied, and the other
# install scripts (prisma's engine download, esbuild's binary check) are not needed. The one
# that matters, argon2's, is run explicitly by the rebuild below. The last line fails the build
# if argon2 cannot hash.
RUN npm ci --ignore-scripts --no-audit --no-fund \
 && npm rebuild argon2 --build-from-source \
 && node --input-type=module -e "const { default: argon2 } = await import('argon2'); await argon2.hash('build-check');"

# ---- build: generate the Prisma client offline, compile TypeScript, drop dev dependencies ------
FROM deps AS build
COPY tsconfig.json prisma.config.ts ./
COPY scripts ./scripts
COPY prisma ./prisma
COPY src ./src
# `npm run build` = scripts/prisma-generate.mjs (prisma generate, no engine download) + tsc -> dist/
RUN npm run build \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

# ---- runtime -------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
WORKDIR /app

# NODE_ENV is left to the deployment: NODE_ENV=production also needs DATABASE_URL, REDIS_URL,
# an https:// ISSUER and COOKIE_KEYS (see README.md).
ENV HOST=0.0.0.0 \
    PORT=3000 \
    KEYS_DIR=/var/lib/veil/keys \
    VEIL_DATA_DIR=/var/lib/veil/data

# Application files stay owned by root (read-only to the server). Only /var/lib/veil is the
# node user's: signing/cookie keys and a development master key (mode 0600) and, without DATABASE_URL, the PGlite data.
RUN mkdir -p /var/lib/veil/keys /var/lib/veil/data \
 && chown -R node:node /var/lib/veil \
 && chmod 700 /var/lib/veil/keys

COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# Read at run time: migrations (src/store/migrator.ts) and page templates (src/interactions/views.ts).
COPY prisma ./prisma
COPY views ./views
# The CLI: `docker compose exec veil veil users list`.
COPY bin ./bin
RUN chmod 755 bin/veil.js && ln -s /app/bin/veil.js /usr/local/bin/veil

USER node
VOLUME ["/var/lib/veil"]
EXPOSE 3000 3001

# Liveness through the admin listener's /healthz (no token needed). It reaches it on loopback,
# which works for the default ADMIN_HOST (127.0.0.1) and for 0.0.0.0.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.ADMIN_PORT || 3001) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

# src/main.ts shuts down gracefully on SIGTERM.
STOPSIGNAL SIGTERM
CMD ["node", "dist/main.js"]
