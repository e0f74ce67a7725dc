-- Pairwise subjects per API (src/oidc/pairwise-subjects.ts). Resource servers registered before
-- this have live tokens carrying the account id as `sub`: they stay "public". New ones default
-- to "pairwise".
ALTER TABLE "resource_servers" ADD COLUMN "subject_mode" TEXT NOT NULL DEFAULT 'public';
ALTER TABLE "resource_servers" ALTER COLUMN "subject_mode" SET DEFAULT 'pairwise';
ALTER TABLE "resource_servers" ADD CONSTRAINT "resource_servers_subject_mode_check" CHECK ("subject_mode" IN ('pairwise', 'public'));
-- Tokens issued before this were not noted in the per-audience expiry marker that guards a
-- subject mode change: until their lifetime has passed, a change is treated as if they were live.
ALTER TABLE "resource_servers" ADD COLUMN "tokens_noted_since" TIMESTAMPTZ(3);
UPDATE "resource_servers" SET "tokens_noted_since" = CURRENT_TIMESTAMP;
