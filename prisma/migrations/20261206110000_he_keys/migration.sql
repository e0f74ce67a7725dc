-- The Paillier keys of confidential claims for KEYS_STORE=database (src/he/he-key-store.ts).
-- The primes are sealed under the master key as in KEYS_DIR/he-keys.json: the check refuses
-- anything but a sealed value in sealed_secret.
CREATE TABLE "he_keys" (
    "kid" TEXT NOT NULL,
    "bits" INTEGER NOT NULL,
    "public_n" TEXT NOT NULL,
    "sealed_secret" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL,
    "retired_at" TIMESTAMPTZ(3),
    "drop_after" TIMESTAMPTZ(3),

    CONSTRAINT "he_keys_pkey" PRIMARY KEY ("kid"),
    CONSTRAINT "he_keys_bits_check" CHECK ("bits" IN (2048, 3072)),
    CONSTRAINT "he_keys_secret_sealed_check" CHECK ("sealed_secret" ~ '^v[12]\.')
);
