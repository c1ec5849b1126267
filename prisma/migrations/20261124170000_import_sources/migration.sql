-- Imported users remember their source system and whether it had verified
-- the address (identity users import --from keycloak|auth0|firebase, and the
-- trickle migration from a legacy identity provider).
ALTER TABLE "users" ADD COLUMN "import_source" TEXT;
ALTER TABLE "users" ADD COLUMN "email_verified" BOOLEAN NOT NULL DEFAULT false;
CREATE INDEX "users_import_source_idx" ON "users"("import_source");

-- Run-time switches shared by every replica; `legacy_idp.ended` ends the
-- trickle migration from a legacy identity provider (identity users trickle-end).
CREATE TABLE "service_settings" (
    "key" TEXT NOT NULL,
    "value" JSONB NOT NULL,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "service_settings_pkey" PRIMARY KEY ("key")
);
