//! Slots by id, in memory, so that a callback or a long poll does not read the slot's row each
//! time. Slots never change once created, so the cache cannot go stale; an entry goes when its
//! slot's retention ends (as the store's row does), and the cache is bounded.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use crate::store::{Slot, SlotId};

/// The most slots kept.
const CAPACITY: usize = 65_536;

/// Recently used slots.
#[derive(Debug)]
pub struct SlotCache {
    retention: Duration,
    slots: Mutex<HashMap<SlotId, Slot>>,
}

impl SlotCache {
    /// An empty cache for slots kept `retention` past their deadline.
    pub fn new(retention: Duration) -> Self {
        Self {
            retention,
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn retained(&self, slot: &Slot, now: SystemTime) -> bool {
        slot.deadline + self.retention >= now
    }

    /// The slot, if cached and still retained.
    pub fn get(&self, id: &SlotId) -> Option<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = slots.get(id)?;
        if self.retained(slot, SystemTime::now()) {
            Some(slot.clone())
        } else {
            slots.remove(id);
            None
        }
    }

    /// Remembers `slot`.
    pub fn put(&self, slot: Slot) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if slots.len() >= CAPACITY {
            let now = SystemTime::now();
            // Past their deadline first; if that is not enough, start over.
            slots.retain(|_, slot| slot.deadline >= now);
            if slots.len() >= CAPACITY {
                slots.clear();
            }
        }
        slots.insert(slot.id.clone(), slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::CallbackAuth;

    fn slot(deadline: SystemTime) -> Slot {
        Slot {
            id: SlotId::random(),
            auth: CallbackAuth::Bearer,
            label: String::new(),
            created_at: SystemTime::now(),
            deadline,
        }
    }

    #[test]
    fn slots_are_served_until_their_retention_ends() {
        let cache = SlotCache::new(Duration::from_secs(60));
        let live = slot(SystemTime::now() + Duration::from_secs(60));
        let retained = slot(SystemTime::now() - Duration::from_secs(30));
        let gone = slot(SystemTime::now() - Duration::from_secs(120));
        for slot in [&live, &retained, &gone] {
            cache.put(slot.clone());
        }
        assert_eq!(cache.get(&live.id), Some(live));
        assert_eq!(cache.get(&retained.id), Some(retained));
        assert_eq!(cache.get(&gone.id), None);
        assert_eq!(cache.get(&SlotId::random()), None);
    }
}
