-- The writer moves `slots.callback_count` along itself, with plain statements in the
-- transaction that stores the callback, so the trigger of 0002 goes.

DROP TRIGGER callbacks_count_per_slot;
