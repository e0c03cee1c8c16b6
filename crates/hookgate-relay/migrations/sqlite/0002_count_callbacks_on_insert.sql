-- Keep `slots.callback_count` (the last sequence number handed out) up to date inside the insert
-- itself, so that storing a callback is one statement in the writer's transaction.

CREATE TRIGGER callbacks_count_per_slot AFTER INSERT ON callbacks
BEGIN
    UPDATE slots SET callback_count = NEW.sequence WHERE id = NEW.slot_id;
END;
