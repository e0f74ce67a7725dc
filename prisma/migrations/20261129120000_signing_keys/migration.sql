-- The signing-key ring and cookie keys in PostgreSQL, for KEYS_STORE=database
-- (src/crypto/key-store-database.ts). Private parts are sealed under the master key as in
-- KEYS_DIR: the checks refuse a plain private JWK in either column.
CREATE TABLE "signing_keys" (
    "kid" TEXT NOT NULL,
    "alg" TEXT NOT NULL,
    "status" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL,
    "activated_at" TIMESTAMPTZ(3),
    "retire_after" TIMESTAMPTZ(3),
    "public_jwk" JSONB NOT NULL,
    "private_jwk" TEXT NOT NULL,

    CONSTRAINT "signing_keys_pkey" PRIMARY KEY ("kid"),
    CONSTRAINT "signing_keys_status_check" CHECK ("status" IN ('next', 'active', 'retiring')),
    CONSTRAINT "signing_keys_private_sealed_check" CHECK ("private_jwk" ~ '^v[12]\.'),
    CONSTRAINT "signing_keys_public_only_check" CHECK (NOT ("public_jwk" ? 'd'))
);

-- Exactly one row: the version every change bumps (and whose row lock serializes writers), and
-- the sealed cookie keys. Version 0: no ring written yet.
CREATE TABLE "key_ring_state" (
    "id" TEXT NOT NULL,
    "version" INTEGER NOT NULL DEFAULT 0,
    "cookie_keys" TEXT,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "key_ring_state_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "key_ring_state_one_row_check" CHECK ("id" = 'ring'),
    CONSTRAINT "key_ring_state_cookie_sealed_check" CHECK ("cookie_keys" IS NULL OR "cookie_keys" ~ '^v[12]\.')
);

INSERT INTO "key_ring_state" ("id") VALUES ('ring');
