-- Pairwise subjects per API (src/oidc/pairwise-subjects.ts). Resource servers registered before
-- this have live tokens carrying the account id as `sub`: they stay "public". New ones default
-- to "pairwise".
ALTER TABLE "resource_servers" ADD COLUMN "subject_mode" TEXT NOT NULL DEFAULT 'public';
ALTER TABLE "resource_servers" ALTER COLUMN "subject_mode" SET DEFAULT 'pairwise';
ALTER TABLE "resource_servers" ADD CONSTRAINT "resource_servers_subject_mode_check" CHECK ("subject_mode" IN ('pairwise', 'public'));
