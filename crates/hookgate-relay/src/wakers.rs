//! Wakes the long polls waiting on a slot when a callback for it is stored, here or (through the
//! store's LISTEN/NOTIFY) on another replica. A waiter registers before it reads the store, so a
//! callback stored between the read and the wait still wakes it. Entries live only while someone
//! waits on the slot.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

use crate::store::SlotId;

/// The waiters of every slot, by the slot id's 128 bits (no allocation per waiter for the key).
#[derive(Debug, Default)]
pub struct Wakers {
    slots: Mutex<HashMap<u128, Arc<Notify>>>,
}

/// A registration of one waiter on one slot; removes the slot's entry when the last one goes.
#[derive(Debug)]
pub struct Registration<'a> {
    wakers: &'a Wakers,
    slot: u128,
    notify: Arc<Notify>,
}

impl Registration<'_> {
    /// What the waiter awaits; call `enable()` on it before reading the store.
    pub fn notify(&self) -> &Notify {
        &self.notify
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut slots = self
            .wakers
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Two references: the map's and ours. Registrations change the count only under the lock.
        if Arc::strong_count(&self.notify) == 2 {
            slots.remove(&self.slot);
        }
    }
}

impl Wakers {
    /// Registers a waiter on `slot`.
    pub fn register(&self, slot: &SlotId) -> Registration<'_> {
        let slot = slot.as_u128();
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let notify = slots.entry(slot).or_default().clone();
        Registration {
            wakers: self,
            slot,
            notify,
        }
    }

    /// Wakes every waiter on `slot`.
    pub fn wake(&self, slot: &SlotId) {
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(notify) = slots.get(&slot.as_u128()) {
            notify.notify_waiters();
        }
    }

    /// Wakes every waiter on every slot (after a lost LISTEN connection).
    pub fn wake_all(&self) {
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        for notify in slots.values() {
            notify.notify_waiters();
        }
    }
}
