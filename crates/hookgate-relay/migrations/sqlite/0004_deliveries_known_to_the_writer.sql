-- The writer tells a repeated delivery by the deliveries it keeps in memory for each slot it
-- stores into (read from this table when it does not know the slot), so the unique index of
-- deliveries goes: it made every insert cost about twice as much. SQLite drops a table's
-- constraint only with the table, so the table is rebuilt, its rows kept.

CREATE TABLE callbacks_rebuilt (
    slot_id        TEXT    NOT NULL REFERENCES slots (id) ON DELETE CASCADE,
    sequence       INTEGER NOT NULL,
    dedup_key      TEXT    NOT NULL,
    received_at_ms INTEGER NOT NULL,
    headers        TEXT    NOT NULL,
    body           BLOB    NOT NULL,
    PRIMARY KEY (slot_id, sequence)
);

INSERT INTO callbacks_rebuilt (slot_id, sequence, dedup_key, received_at_ms, headers, body)
SELECT slot_id, sequence, dedup_key, received_at_ms, headers, body FROM callbacks;

DROP TABLE callbacks;

ALTER TABLE callbacks_rebuilt RENAME TO callbacks;
