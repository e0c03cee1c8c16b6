//! Slots' terms by id, in memory, so that a callback or a long poll does not read the slot's row
//! each time. Slots never change once created, so the cache cannot go stale; an entry goes when
//! its slot's retention ends (as the store's row does), and the cache is bounded. What a slot
//! holds is not kept here: the store is the one source of that.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use crate::store::{CallbackAuth, Slot, SlotId};

/// The most slots kept.
const CAPACITY: usize = 65_536;

/// Recently used slots.
#[derive(Debug)]
pub struct SlotCache {
    retention: Duration,
    /// By the slot id's 128 bits: no allocation for the key, nor for a second copy of the id.
    slots: Mutex<HashMap<u128, SlotTerms>>,
}

/// What a callback or a long poll needs to know of a slot: copied out of the cache without an
/// allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotTerms {
    /// How callbacks into the slot authenticate.
    pub auth: CallbackAuth,
    /// When the slot stops taking callbacks.
    pub deadline: SystemTime,
}

impl From<&Slot> for SlotTerms {
    fn from(slot: &Slot) -> Self {
        Self {
            auth: slot.auth,
            deadline: slot.deadline,
        }
    }
}

impl SlotCache {
    /// An empty cache for slots kept `retention` past their deadline.
    pub fn new(retention: Duration) -> Self {
        Self {
            retention,
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn retained(&self, terms: &SlotTerms, now: SystemTime) -> bool {
        terms.deadline + self.retention >= now
    }

    /// The slot's terms, if it is cached and still retained.
    pub fn terms(&self, id: &SlotId) -> Option<SlotTerms> {
        let key = id.as_u128();
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let terms = slots.get(&key)?;
        if self.retained(terms, SystemTime::now()) {
            Some(*terms)
        } else {
            slots.remove(&key);
            None
        }
    }

    /// Remembers `slot`.
    pub fn put(&self, slot: Slot) {
        let key = slot.id.as_u128();
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if slots.len() >= CAPACITY {
            let now = SystemTime::now();
            // Past their deadline first; if that is not enough, start over.
            slots.retain(|_, terms| terms.deadline >= now);
            if slots.len() >= CAPACITY {
                slots.clear();
            }
        }
        slots.insert(key, SlotTerms::from(&slot));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(cache.terms(&live.id), Some(SlotTerms::from(&live)));
        assert_eq!(cache.terms(&retained.id), Some(SlotTerms::from(&retained)));
        assert_eq!(cache.terms(&gone.id), None);
        assert_eq!(cache.terms(&SlotId::random()), None);
    }
}
