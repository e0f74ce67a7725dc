-- Sealed access tokens: each resource server's encryption key (inline JWK or jwks_uri), the
-- JWE algorithms, the user claims it may receive, and its introspection credentials.
ALTER TABLE "resource_servers"
  ADD COLUMN "encryption_jwk" JSONB,
  ADD COLUMN "jwks_uri" TEXT,
  ADD COLUMN "encryption_alg" TEXT NOT NULL DEFAULT 'ECDH-ES+A256KW',
  ADD COLUMN "encryption_enc" TEXT NOT NULL DEFAULT 'A256GCM',
  ADD COLUMN "claims" TEXT[] NOT NULL DEFAULT ARRAY[]::TEXT[],
  ADD COLUMN "introspection_client_id" TEXT,
  ADD COLUMN "introspection_secret_hash" TEXT;

CREATE UNIQUE INDEX "resource_servers_introspection_client_id_key" ON "resource_servers"("introspection_client_id");
