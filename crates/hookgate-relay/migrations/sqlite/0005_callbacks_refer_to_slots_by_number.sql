-- Callbacks refer to their slot by the slot's number (`slots.ref`, its row id, in the order slots
-- were created) instead of by its 32-character id. The callbacks' primary key then holds a few
-- bytes per callback, and the callbacks of slots created about the same time sit together in it,
-- so a transaction storing callbacks into many recent slots changes a page or two of that index
-- instead of one per slot. `ref` is an INTEGER PRIMARY KEY, so VACUUM keeps it. The unused
-- `callback_count` column goes. Both tables are rebuilt and every row is kept.

CREATE TABLE slots_rebuilt (
    ref            INTEGER PRIMARY KEY,
    id             TEXT    NOT NULL UNIQUE,
    auth           TEXT    NOT NULL,
    label          TEXT    NOT NULL,
    created_at_ms  INTEGER NOT NULL,
    deadline_ms    INTEGER NOT NULL
);

INSERT INTO slots_rebuilt (id, auth, label, created_at_ms, deadline_ms)
SELECT id, auth, label, created_at_ms, deadline_ms FROM slots ORDER BY created_at_ms, id;

CREATE TABLE callbacks_rebuilt (
    slot_ref       INTEGER NOT NULL REFERENCES slots_rebuilt (ref) ON DELETE CASCADE,
    sequence       INTEGER NOT NULL,
    dedup_key      TEXT    NOT NULL,
    received_at_ms INTEGER NOT NULL,
    headers        TEXT    NOT NULL,
    body           BLOB    NOT NULL,
    PRIMARY KEY (slot_ref, sequence)
);

INSERT INTO callbacks_rebuilt (slot_ref, sequence, dedup_key, received_at_ms, headers, body)
SELECT slots_rebuilt.ref, callbacks.sequence, callbacks.dedup_key, callbacks.received_at_ms,
       callbacks.headers, callbacks.body
FROM callbacks JOIN slots_rebuilt ON slots_rebuilt.id = callbacks.slot_id
ORDER BY slots_rebuilt.ref, callbacks.sequence;

DROP TABLE callbacks;
DROP TABLE slots;

-- Renaming the parent table rewrites the callbacks' reference to it.
ALTER TABLE slots_rebuilt RENAME TO slots;
ALTER TABLE callbacks_rebuilt RENAME TO callbacks;

CREATE INDEX slots_by_deadline ON slots (deadline_ms);
