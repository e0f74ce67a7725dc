-- Consent to the user claims an API receives (src/oidc/consent-policy.ts); ends with its grant.
CREATE TABLE "grant_api_consents" (
    "grant_id" TEXT NOT NULL,
    "resource" TEXT NOT NULL,
    "claims" TEXT[],
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "grant_api_consents_pkey" PRIMARY KEY ("grant_id","resource")
);

ALTER TABLE "grant_api_consents" ADD CONSTRAINT "grant_api_consents_grant_id_fkey" FOREIGN KEY ("grant_id") REFERENCES "grants"("id") ON DELETE CASCADE ON UPDATE CASCADE;
