-- At most one reset token per user: keep each user's newest, then make user_id unique.
DELETE FROM "password_reset_tokens" AS older
USING "password_reset_tokens" AS newer
WHERE older."user_id" = newer."user_id"
  AND (older."created_at", older."token_hash") < (newer."created_at", newer."token_hash");

-- DropIndex
DROP INDEX "password_reset_tokens_user_id_idx";

-- CreateIndex
CREATE UNIQUE INDEX "password_reset_tokens_user_id_key" ON "password_reset_tokens"("user_id");

-- CreateIndex
CREATE INDEX "password_reset_tokens_expires_at_idx" ON "password_reset_tokens"("expires_at");
