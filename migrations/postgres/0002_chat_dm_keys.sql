-- Room chat, users' public keys for end-to-end encrypted DMs, and direct messages.

CREATE TABLE chat_messages (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    room_id    BIGINT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- plain text, never interpreted as HTML
    body       TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);

-- history pages: WHERE room_id = ? AND id < ? ORDER BY id DESC
CREATE INDEX chat_messages_by_room ON chat_messages (room_id, id);

-- Every key a user ever published stays, so messages encrypted to an old key id remain
-- readable after rotation; the current key is the newest row.
CREATE TABLE user_keys (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key_id     TEXT   NOT NULL,
    -- canonical public JWK: {"crv":"P-256","kty":"EC","x":…,"y":…}
    jwk        TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (user_id, key_id)
);

-- Either a plain body or the encrypted fields, which the server stores untouched.
CREATE TABLE direct_messages (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sender_id        BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    recipient_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    body             TEXT,
    ciphertext       TEXT,
    iv               TEXT,
    sender_key_id    TEXT,
    recipient_key_id TEXT,
    created_at       BIGINT NOT NULL,
    read_at          BIGINT,
    CHECK ((body IS NULL) <> (ciphertext IS NULL)),
    CHECK (sender_id <> recipient_id)
);

CREATE INDEX direct_messages_by_pair ON direct_messages (sender_id, recipient_id, id);
CREATE INDEX direct_messages_unread ON direct_messages (recipient_id, read_at);
