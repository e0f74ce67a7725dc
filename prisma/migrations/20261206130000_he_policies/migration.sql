-- Confidential-claim policies (src/he/decisions/policies.ts): which node (a confidential client)
-- may ask Veil for a blinded decision or an aggregate over which homomorphically encrypted claim.
-- A policy goes with its client.
CREATE TABLE "he_policies" (
    "id" TEXT NOT NULL,
    "client_id" TEXT NOT NULL,
    "claim" TEXT NOT NULL,
    "kind" TEXT NOT NULL,
    "op" TEXT NOT NULL,
    "purpose" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "he_policies_pkey" PRIMARY KEY ("id")
);

CREATE INDEX "he_policies_client_id_idx" ON "he_policies"("client_id");

ALTER TABLE "he_policies" ADD CONSTRAINT "he_policies_client_id_fkey" FOREIGN KEY ("client_id") REFERENCES "clients"("client_id") ON DELETE CASCADE ON UPDATE CASCADE;
