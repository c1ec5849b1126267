-- Second factor (TOTP + recovery codes) and first-party clients.
ALTER TABLE "users" ADD COLUMN "mfa_required" BOOLEAN NOT NULL DEFAULT false;

ALTER TABLE "clients" ADD COLUMN "first_party" BOOLEAN NOT NULL DEFAULT false;

CREATE TABLE "user_totp" (
    "user_id" UUID NOT NULL,
    "secret_enc" TEXT NOT NULL,
    "confirmed_at" TIMESTAMPTZ(3),
    "last_used_step" BIGINT NOT NULL DEFAULT 0,
    "recovery_code_hashes" TEXT[] DEFAULT ARRAY[]::TEXT[],
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "user_totp_pkey" PRIMARY KEY ("user_id")
);

ALTER TABLE "user_totp" ADD CONSTRAINT "user_totp_user_id_fkey" FOREIGN KEY ("user_id") REFERENCES "users"("id") ON DELETE CASCADE ON UPDATE CASCADE;
