-- A push subscription belongs to the session (token) that saved it and ends with it: a
-- logout deletes the subscriptions its token saved, a password change those of every other
-- session, and a push goes only to subscriptions whose session still counts (same token
-- generation, not logged out, not expired), so a stolen token's subscription stops
-- getting notices when the session it came from ends.
--
-- Rows saved before this have no session to end with: they are dropped. The app saves its
-- browser's subscription again, under the new session, when its user next opens it.
DELETE FROM push_subscriptions;

-- the token's id (`jti`), its generation (`ver`) and its expiry (Unix milliseconds)
ALTER TABLE push_subscriptions ADD COLUMN token_id TEXT NOT NULL DEFAULT '';
ALTER TABLE push_subscriptions ADD COLUMN token_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE push_subscriptions ADD COLUMN token_expires_at BIGINT NOT NULL DEFAULT 0;

CREATE INDEX push_subscriptions_by_token ON push_subscriptions (token_id);
