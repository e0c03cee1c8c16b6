-- The writer takes a slot's next sequence number from the callbacks' primary key, so the trigger
-- of 0002 goes, and with it the write of the slot's row for every callback.
-- `slots.callback_count` is no longer kept up to date.

DROP TRIGGER callbacks_count_per_slot;
