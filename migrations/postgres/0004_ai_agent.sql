-- The AI agent: its sessions, their summaries, users' custom prompts and Telegram links.

-- One row per agent session: from `transcription_start` until it is stopped or summarised.
-- A room has at most one open session (ended_at IS NULL); nodes that transcribe the same
-- room write into it.
CREATE TABLE agent_sessions (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    room_id    BIGINT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    started_by BIGINT REFERENCES users (id) ON DELETE SET NULL,
    started_at BIGINT NOT NULL,
    ended_at   BIGINT
);

CREATE INDEX agent_sessions_by_room ON agent_sessions (room_id, id);
-- at most one open session per room, even when two nodes start one at the same moment
CREATE UNIQUE INDEX agent_sessions_one_open ON agent_sessions (room_id) WHERE ended_at IS NULL;

-- Segments say which session heard them (NULL for segments stored before sessions existed).
ALTER TABLE transcript_segments ADD COLUMN session_id BIGINT REFERENCES agent_sessions (id) ON DELETE SET NULL;

CREATE INDEX transcript_segments_by_session ON transcript_segments (session_id, start_ms);

-- One summary per session: the UNIQUE constraint is what makes a repeated (or concurrent,
-- or other-node) trigger return the stored summary instead of writing a second one.
CREATE TABLE summaries (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    room_id      BIGINT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    session_id   BIGINT NOT NULL UNIQUE REFERENCES agent_sessions (id) ON DELETE CASCADE,
    requested_by BIGINT REFERENCES users (id) ON DELETE SET NULL,
    -- 'ai' (a model wrote it) or 'heuristic' (the server extracted it)
    source       TEXT   NOT NULL,
    -- the model that wrote it (source 'ai')
    model        TEXT,
    -- why heuristic: 'short', 'no_provider', 'provider_failed'
    reason       TEXT,
    body         TEXT   NOT NULL,
    -- how much went in: transcript segments and chat messages
    segments     BIGINT NOT NULL,
    messages     BIGINT NOT NULL,
    created_at   BIGINT NOT NULL
);

CREATE INDEX summaries_by_room ON summaries (room_id, id);

-- A user's own system prompt for the summaries they trigger; no row: the default.
CREATE TABLE ai_prompts (
    user_id    BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    prompt     TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);

-- A user's Telegram chat for summaries. A link request stores the hash of a single-use,
-- expiring token; the bot's `/start <token>` sets chat_id and clears the token.
CREATE TABLE telegram_links (
    user_id          BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    chat_id          BIGINT,
    confirmed_at     BIGINT,
    token_hash       TEXT UNIQUE,
    token_expires_at BIGINT,
    created_at       BIGINT NOT NULL
);
