-- WebPush subscriptions: one row per browser (its endpoint), owned by the user who last
-- subscribed in it. Deleted when the push service answers 404/410 for the endpoint.
CREATE TABLE push_subscriptions (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    endpoint   TEXT   NOT NULL UNIQUE,
    -- base64url of the browser's P-256 public key and of its 16-byte auth secret
    p256dh     TEXT   NOT NULL,
    auth       TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX push_subscriptions_by_user ON push_subscriptions (user_id);
