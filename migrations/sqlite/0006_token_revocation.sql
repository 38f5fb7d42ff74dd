-- Revocable sessions. A token carries its user's `token_version` (claim `ver`) and its own id
-- (claim `jti`): bumping the version (a password change) ends every older token of the user;
-- a logout puts the one token's id on the deny list until it would have expired anyway
-- (expired rows are purged as new ones are written).
ALTER TABLE users ADD COLUMN token_version BIGINT NOT NULL DEFAULT 0;

CREATE TABLE revoked_tokens (
    jti        TEXT   PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- the token's own expiry, Unix milliseconds: the row is useless after it
    expires_at BIGINT NOT NULL
);

CREATE INDEX revoked_tokens_by_expiry ON revoked_tokens (expires_at);
CREATE INDEX revoked_tokens_by_user ON revoked_tokens (user_id);
