-- `callbacks.slot_id` loses its foreign key: checking it cost a lookup of the slot for every
-- callback stored, 12 % of intake in relay-bench (same run), and it guarded nothing the store
-- does not guard already:
--   - callbacks go in only through `hookgate_store_callbacks`, which stores into slots it found
--     and locked (`FOR NO KEY UPDATE`), so a slot cannot be removed while callbacks go into it;
--   - a slot is removed together with its callbacks, in one transaction (the store's
--     `remove_slots_before`), which does the foreign key's `ON DELETE CASCADE`.
-- Replicas of a version before this one still remove slots alone: while such a replica runs
-- beside a newer one, the callbacks of the slots it removes are left behind (never read).

ALTER TABLE callbacks DROP CONSTRAINT IF EXISTS callbacks_slot_id_fkey;
