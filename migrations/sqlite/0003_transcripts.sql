-- Server-side transcription: one row per transcribed utterance.

CREATE TABLE transcript_segments (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id        BIGINT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    -- the speaker; kept when the user is deleted would leak nothing useful, so cascade
    user_id        BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- the call participant (one connection) that spoke; not a foreign key: calls aren't stored
    participant_id BIGINT NOT NULL,
    -- wall-clock Unix milliseconds of the utterance's first and last audio
    start_ms       BIGINT NOT NULL,
    end_ms         BIGINT NOT NULL,
    body           TEXT   NOT NULL,
    created_at     BIGINT NOT NULL
);

-- the room's transcript in time order: WHERE room_id = ? ORDER BY start_ms, id
CREATE INDEX transcript_segments_by_room ON transcript_segments (room_id, start_ms);
