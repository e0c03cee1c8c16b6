-- Callbacks refer to their slot by the slot's number (`slots.ref`) instead of by its
-- 32-character id: the callbacks' primary key then takes a few bytes per callback instead of
-- about forty, so the entries of the slots a transaction stores into fill fewer of its pages.
-- `ref` is an INTEGER PRIMARY KEY, so VACUUM keeps it, and AUTOINCREMENT, so the number of a
-- removed slot never goes to another (the writer keeps slots' numbers in memory). The unused
-- `callback_count` column goes. Both tables are rebuilt and their rows kept, except callbacks
-- whose slot no longer exists, which no request could reach (a poll needs its slot).

CREATE TABLE slots_rebuilt (
    ref            INTEGER PRIMARY KEY AUTOINCREMENT,
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
