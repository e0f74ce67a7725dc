-- Audit trail (src/audit/audit-log.ts): append-only, no personal data beyond the account id.
CREATE TABLE "audit_events" (
    "id" BIGSERIAL NOT NULL,
    "at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "type" TEXT NOT NULL,
    "account_id" TEXT,
    "client_id" TEXT,
    "actor" TEXT NOT NULL,
    "details" JSONB NOT NULL DEFAULT '{}',

    CONSTRAINT "audit_events_pkey" PRIMARY KEY ("id")
);

CREATE INDEX "audit_events_at_idx" ON "audit_events"("at");

CREATE INDEX "audit_events_type_at_idx" ON "audit_events"("type", "at");
