-- Storing a group of callbacks becomes one call, so one round trip to the server (the call runs
-- in its own transaction and commits when it returns) instead of seven. The steps are those the
-- writer took one statement at a time:
--   1. lock the rows of the slots written to, in id order, so that replicas writing to the same
--      slots queue rather than deadlock (`NO KEY UPDATE`: the row is not changed);
--   2. then, in a fresh snapshot (a VOLATILE function takes one per statement, so deliveries
--      committed by another replica while this one waited for the locks are seen), number each
--      new delivery after the highest sequence number its slot holds (read from the primary
--      key), refuse those beyond the slot's limit, store the rest, and announce each slot written
--      on `hookgate_callbacks` (PostgreSQL sends one notification per slot and transaction, on
--      commit).
-- A delivery whose (slot, key) was stored before, or comes earlier in the same group, is a
-- duplicate and gets the first one's sequence number.
-- The answer has one row per callback, in the order given: `n` (from 1), `outcome` (`stored`,
-- `duplicate`, `full` or `no_slot`) and `sequence` (for stored and duplicate).
--
-- `slots.callback_count` goes: the primary key of `callbacks` holds the same number, and
-- updating a slot's row for every group left a dead row version behind each time.

ALTER TABLE slots DROP COLUMN callback_count;

CREATE FUNCTION hookgate_store_callbacks(
    slot_ids       TEXT[],
    dedup_keys     TEXT[],
    received_at_ms BIGINT[],
    headers        TEXT[],
    bodies         BYTEA[],
    max_per_slot   BIGINT[]
) RETURNS TABLE (n BIGINT, outcome TEXT, sequence BIGINT)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    -- Each slot by its key (a scan of `slots` would grow with the number of slots).
    PERFORM 1 FROM (SELECT DISTINCT u.id FROM unnest(slot_ids) AS u(id)) AS w
    JOIN slots ON slots.id = w.id
    ORDER BY slots.id
    FOR NO KEY UPDATE OF slots;

    RETURN QUERY
    WITH given AS (
        SELECT g.*, min(g.n) OVER (PARTITION BY g.slot_id, g.dedup_key) AS first_n
        FROM unnest(slot_ids, dedup_keys, received_at_ms, headers, bodies, max_per_slot)
             WITH ORDINALITY AS g(slot_id, dedup_key, received_at_ms, headers, body, max_per_slot, n)
    ),
    -- The first of each delivery whose slot exists, with what its slot holds.
    known AS (
        SELECT given.*, c.sequence AS earlier,
               (SELECT coalesce(max(held.sequence), 0) FROM callbacks held
                WHERE held.slot_id = s.id) AS held
        FROM given
        JOIN slots s ON s.id = given.slot_id
        LEFT JOIN callbacks c ON c.slot_id = given.slot_id AND c.dedup_key = given.dedup_key
        WHERE given.n = given.first_n
    ),
    numbered AS (
        SELECT known.*,
               known.held
                 + row_number() OVER (PARTITION BY known.slot_id ORDER BY known.n) AS next
        FROM known
        WHERE known.earlier IS NULL
    ),
    inserted AS (
        INSERT INTO callbacks (slot_id, sequence, dedup_key, received_at_ms, headers, body)
        SELECT numbered.slot_id, numbered.next, numbered.dedup_key, numbered.received_at_ms,
               numbered.headers, numbered.body
        FROM numbered
        WHERE numbered.next <= numbered.max_per_slot
        RETURNING callbacks.slot_id, callbacks.dedup_key, callbacks.sequence,
                  pg_notify('hookgate_callbacks', callbacks.slot_id) AS announced
    ),
    -- The outcome of each first delivery (`inserted` holds just those numbered within the limit).
    firsts AS (
        SELECT known.slot_id, known.dedup_key, 'duplicate' AS outcome, known.earlier AS sequence
        FROM known
        WHERE known.earlier IS NOT NULL
        UNION ALL
        SELECT numbered.slot_id, numbered.dedup_key,
               CASE WHEN numbered.next <= numbered.max_per_slot THEN 'stored' ELSE 'full' END,
               numbered.next
        FROM numbered
    )
    SELECT given.n,
           CASE WHEN firsts.outcome IS NULL THEN 'no_slot'
                WHEN given.n <> given.first_n AND firsts.outcome = 'stored' THEN 'duplicate'
                ELSE firsts.outcome END,
           CASE WHEN firsts.outcome = 'full' THEN NULL ELSE firsts.sequence END
    FROM given
    LEFT JOIN firsts ON firsts.slot_id = given.slot_id AND firsts.dedup_key = given.dedup_key
    ORDER BY given.n;
END
$$;
