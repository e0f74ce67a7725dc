# syntax=docker/dockerfile:1
#
# Veil: multi-stage image, production by default (NODE_ENV=production).
#   docker build -t veil .
#   docker run -p 3000:3000 -v veil-state:/var/lib/veil \
#     -e ISSUER=https://id.example.com -e TRUST_PROXY=true -e DATABASE_URL=... -e REDIS_URL=... \
#     -e COOKIE_KEYS=... -e VEIL_MASTER_KEY_FILE=/run/secrets/veil-master-key veil
# It refuses to start until every production setting is there (README, "Production").
# To try it with embedded stores and an http issuer, opt into development explicitly:
#   docker run -p 3000:3000 -e NODE_ENV=development -e ISSUER=http://localhost:3000 veil
# With PostgreSQL and Redis, see docker-compose.yml. Nothing here is exercised in CI, which has no
# Docker engine. The same steps were checked outside Docker.

# Node 24 LTS (Node 20 reached end of life in April 2026). The code also runs on Node 20.19+.
ARG NODE_IMAGE=node:24-bookworm-slim

# ---- deps: every dependency (dev included), with argon2 compiled for this Node ----------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app

# argon2 is compiled from source for the image's Node: its prebuilt binary needs Node-API 10,
# which Node 24 has but Node 20 (NODE_IMAGE=node:20-...) does not (loading it there crashes with
# SIGSEGV). The official node images ship the Node headers under /usr/local/include/node, so
# node-gyp downloads nothing (building on every Node keeps one recipe for both).
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
ENV npm_config_nodedir=/usr/local

COPY package.json package-lock.json ./
# The resource-server SDK is a workspace package (its manifest is enough for npm ci to link it).
COPY packages/resource-server/package.json ./packages/resource-server/package.json
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
COPY packages/resource-server ./packages/resource-server
# `npm run build` = the SDK package, then scripts/prisma-generate.mjs (prisma generate, no engine download) + tsc -> dist/
RUN npm run build \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

# ---- runtime -------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
WORKDIR /app

# Production unless the deployment says otherwise: no demo seed, no generated master key, an
# https:// ISSUER, PostgreSQL, Redis and COOKIE_KEYS required (src/config.ts says which is missing).
# The public listener binds every interface, as a container must for a published port; the admin
# listener stays on the container's loopback (ADMIN_HOST=127.0.0.1, the default): reach it with
# `docker exec <container> veil ...`, which reads the token Veil generates into KEYS_DIR.
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000 \
    KEYS_DIR=/var/lib/veil/keys \
    VEIL_DATA_DIR=/var/lib/veil/data

# Application files stay owned by root (read-only to the server). Only /var/lib/veil is the
# node user's: the signing key ring, cookie keys and the generated admin token (mode 0600), a
# development master key when NODE_ENV=development, and, without DATABASE_URL, the PGlite data.
RUN mkdir -p /var/lib/veil/keys /var/lib/veil/data \
 && chown -R node:node /var/lib/veil \
 && chmod 700 /var/lib/veil/keys

COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# What node_modules/@veil/resource-server links to (the demo API imports it).
COPY --from=build /app/packages/resource-server/package.json ./packages/resource-server/package.json
COPY --from=build /app/packages/resource-server/dist ./packages/resource-server/dist
# Read at run time: migrations (src/store/migrator.ts) and page templates (src/interactions/views.ts).
COPY prisma ./prisma
COPY views ./views
# The CLI: `docker compose exec veil veil users list` (it finds KEYS_DIR/admin-token by itself).
COPY bin ./bin
RUN chmod 755 bin/veil.js && ln -s /app/bin/veil.js /usr/local/bin/veil

USER node
VOLUME ["/var/lib/veil"]
# Only the public port: the admin listener is loopback-only unless ADMIN_HOST, ADMIN_TOKEN(_FILE)
# and ADMIN_TLS_CERT/ADMIN_TLS_KEY say otherwise (docs/ADMIN_API.md).
EXPOSE 3000

# Liveness through the admin listener's /healthz, which needs no token on a loopback bind. With
# ADMIN_HOST off loopback (TLS and the token required, probes included) replace this check.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.ADMIN_PORT || 3001) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

# src/main.ts shuts down gracefully on SIGTERM.
STOPSIGNAL SIGTERM
CMD ["node", "dist/main.js"]
