-- Account attributes (src/accounts/attribute-catalogue.ts): typed integers, each value sealed
-- under the master key (src/store/account-attributes.ts); they go with their account.
CREATE TABLE "account_attributes" (
    "account_id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "value" TEXT NOT NULL,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "account_attributes_pkey" PRIMARY KEY ("account_id","name")
);

ALTER TABLE "account_attributes" ADD CONSTRAINT "account_attributes_account_id_fkey" FOREIGN KEY ("account_id") REFERENCES "accounts"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- The attributes a resource server's tokens carry Paillier-encrypted (claim `hec`).
ALTER TABLE "resource_servers" ADD COLUMN "he_claims" TEXT[] NOT NULL DEFAULT ARRAY[]::TEXT[];
