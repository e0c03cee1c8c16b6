//! Slots by id, in memory, so that a callback or a long poll does not read the slot's row each
//! time. Slots never change once created, so the cache cannot go stale; an entry goes when its
//! slot's retention ends (as the store's row does), and the cache is bounded.
//!
//! With a store only this process writes to (SQLite), a slot created here also carries the last
//! sequence number stored into it, kept up to date as callbacks are stored: a long poll after
//! that number then has nothing to read from the store and waits at once.

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
    slots: Mutex<HashMap<u128, Entry>>,
}

/// What is kept of a slot: its terms (the id is the map's key), kept small, as a relay holds
/// many.
#[derive(Debug)]
struct Entry {
    terms: SlotTerms,
    /// The last sequence number stored into the slot, when this process stored every one.
    last_sequence: Option<u64>,
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

    fn retained(&self, entry: &Entry, now: SystemTime) -> bool {
        entry.terms.deadline + self.retention >= now
    }

    /// The slot's terms, if it is cached and still retained.
    pub fn terms(&self, id: &SlotId) -> Option<SlotTerms> {
        let key = id.as_u128();
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = slots.get(&key)?;
        if self.retained(entry, SystemTime::now()) {
            Some(entry.terms)
        } else {
            slots.remove(&key);
            None
        }
    }

    /// Remembers `slot`, read from the store: what was stored into it is not known here.
    pub fn put(&self, slot: Slot) {
        self.insert(slot, None);
    }

    /// Remembers `slot`, just created by this process, which stores every callback into it.
    pub fn put_new(&self, slot: Slot) {
        self.insert(slot, Some(0));
    }

    fn insert(&self, slot: Slot, last_sequence: Option<u64>) {
        let key = slot.id.as_u128();
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if slots.len() >= CAPACITY {
            let now = SystemTime::now();
            // Past their deadline first; if that is not enough, start over.
            slots.retain(|_, entry| entry.terms.deadline >= now);
            if slots.len() >= CAPACITY {
                slots.clear();
            }
        }
        slots.insert(
            key,
            Entry {
                terms: SlotTerms::from(&slot),
                last_sequence,
            },
        );
    }

    /// Notes that a callback was stored into the slot with `sequence`; call before waking its
    /// waiters.
    pub fn stored(&self, id: &SlotId, sequence: u64) {
        let key = id.as_u128();
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(last) = slots
            .get_mut(&key)
            .and_then(|entry| entry.last_sequence.as_mut())
        {
            *last = (*last).max(sequence);
        }
    }

    /// Forgets what was stored into the slot: polls on it read the store from now on.
    pub fn forget_sequence(&self, id: &SlotId) {
        let key = id.as_u128();
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = slots.get_mut(&key) {
            entry.last_sequence = None;
        }
    }

    /// Whether the slot is known to hold no callback after sequence `after`.
    pub fn nothing_after(&self, id: &SlotId, after: u64) -> bool {
        let key = id.as_u128();
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots
            .get(&key)
            .and_then(|entry| entry.last_sequence)
            .is_some_and(|last| last <= after)
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
    fn only_slots_created_here_know_what_they_hold() {
        let cache = SlotCache::new(Duration::from_secs(60));
        let created = slot(SystemTime::now() + Duration::from_secs(60));
        let loaded = slot(SystemTime::now() + Duration::from_secs(60));
        cache.put_new(created.clone());
        cache.put(loaded.clone());
        assert!(cache.nothing_after(&created.id, 0));
        assert!(!cache.nothing_after(&loaded.id, 0));
        assert!(!cache.nothing_after(&SlotId::random(), 0));

        cache.stored(&created.id, 2);
        cache.stored(&created.id, 1);
        cache.stored(&loaded.id, 1);
        assert!(!cache.nothing_after(&created.id, 1));
        assert!(cache.nothing_after(&created.id, 2));
        assert!(!cache.nothing_after(&loaded.id, 5));

        cache.forget_sequence(&created.id);
        cache.stored(&created.id, 3);
        assert!(!cache.nothing_after(&created.id, 3));
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
