-- Slots, the callbacks stored in them, and the relay's own signing key.
-- Instants are milliseconds since the Unix epoch (UTC).

CREATE TABLE slots (
    id             TEXT    PRIMARY KEY NOT NULL,
    auth           TEXT    NOT NULL,
    label          TEXT    NOT NULL,
    created_at_ms  INTEGER NOT NULL,
    deadline_ms    INTEGER NOT NULL,
    callback_count INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX slots_by_deadline ON slots (deadline_ms);

CREATE TABLE callbacks (
    slot_id        TEXT    NOT NULL REFERENCES slots (id) ON DELETE CASCADE,
    sequence       INTEGER NOT NULL,
    dedup_key      TEXT    NOT NULL,
    received_at_ms INTEGER NOT NULL,
    headers        TEXT    NOT NULL,
    body           BLOB    NOT NULL,
    PRIMARY KEY (slot_id, sequence),
    UNIQUE (slot_id, dedup_key)
);

CREATE TABLE relay_keys (
    name          TEXT    PRIMARY KEY NOT NULL,
    secret        BLOB    NOT NULL,
    created_at_ms INTEGER NOT NULL
);
