-- The pairwise-subject secret (src/crypto/pairwise-secret.ts) for KEYS_STORE=database: random,
-- generated at the first start and kept for the life of the deployment, sealed under the master
-- key (re-sealed, never changed, by `veil keys rotate-master`). The check refuses a plain value.
ALTER TABLE "key_ring_state" ADD COLUMN "pairwise_secret" TEXT;
ALTER TABLE "key_ring_state" ADD CONSTRAINT "key_ring_state_pairwise_sealed_check" CHECK ("pairwise_secret" IS NULL OR "pairwise_secret" ~ '^v[12]\.');
