-- Caps on what one signed-in user can do (docs/security.md, "Signed-in users: caps and
-- budgets").

-- A removal by a moderator or the owner is sticky: the removed user comes back only when a
-- moderator or the owner adds them, or an invite from one of them is accepted. An invite
-- from an ordinary member can't undo it. The row goes when they are back (or the room is).
CREATE TABLE room_removals (
    room_id    BIGINT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    removed_by BIGINT NOT NULL,
    removed_at BIGINT NOT NULL,
    PRIMARY KEY (room_id, user_id)
);

-- Model-written AI summaries per user per hour, counted where every node sees it: one row
-- per user holding the current window's start (Unix milliseconds) and what it used.
CREATE TABLE ai_summary_budget (
    user_id      BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    window_start BIGINT NOT NULL,
    used         BIGINT NOT NULL
);

-- Rooms are counted per owner at creation.
CREATE INDEX rooms_by_owner ON rooms (owner_id);
