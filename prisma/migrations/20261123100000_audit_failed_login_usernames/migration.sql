-- Failed logins of unknown usernames kept the attempted name as typed, which
-- may be a password typed into the wrong field. New rows keep only a keyed
-- hash (details.username_hmac, HMAC-SHA256 under a key derived from
-- KEY_ENCRYPTION_KEY, which the database never sees), so the raw names
-- already stored are removed. Rows of existing accounts keep theirs: it named
-- that account.
UPDATE "audit_events"
SET "details" = "details" - 'username'
WHERE "type" = 'login.failure' AND "subject" IS NULL AND "details" ? 'username';
