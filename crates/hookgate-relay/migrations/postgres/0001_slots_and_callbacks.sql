-- Slots, the callbacks stored in them, and the relay's own signing key (shared by every replica
-- on the database). Instants are milliseconds since the Unix epoch (UTC).

CREATE TABLE slots (
    id             TEXT   PRIMARY KEY,
    auth           TEXT   NOT NULL,
    label          TEXT   NOT NULL,
    created_at_ms  BIGINT NOT NULL,
    deadline_ms    BIGINT NOT NULL,
    callback_count BIGINT NOT NULL DEFAULT 0
);

CREATE INDEX slots_by_deadline ON slots (deadline_ms);

CREATE TABLE callbacks (
    slot_id        TEXT   NOT NULL REFERENCES slots (id) ON DELETE CASCADE,
    sequence       BIGINT NOT NULL,
    dedup_key      TEXT   NOT NULL,
    received_at_ms BIGINT NOT NULL,
    headers        TEXT   NOT NULL,
    body           BYTEA  NOT NULL,
    PRIMARY KEY (slot_id, sequence),
    UNIQUE (slot_id, dedup_key)
);

CREATE TABLE relay_keys (
    name          TEXT   PRIMARY KEY,
    secret        BYTEA  NOT NULL,
    created_at_ms BIGINT NOT NULL
);
