//! The store as the relay's handlers use it: the backend, and the long polls waiting on it.
//! Storing a callback wakes the slot's waiters here (and, through PostgreSQL's NOTIFY, on the
//! other replicas); a long poll reads and waits here. The backend, the database with the SQLite
//! writer's own numbering of recent slots, is the one source of a slot's last sequence: a waiter
//! reads it each time it is woken.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{AddOutcome, Delivery, NewCallback, SlotId, SlotStore, StoreError};
use crate::wakers::Wakers;

/// How many long polls read the backend at once. A read in flight holds the backend's
/// future (a pooled connection's queue entry, the query); ten thousand polls arriving together
/// would hold ten thousand of them, and the heap keeps that peak. Waiting for a permit holds
/// next to nothing.
/// Half of a PostgreSQL pool, so the writer and slot creation always find a connection.
const CONCURRENT_READS: usize = 8;

/// A backend and its waiters.
pub struct WaitingStore {
    backend: Arc<dyn SlotStore>,
    wakers: Arc<Wakers>,
    reads: Semaphore,
}

impl WaitingStore {
    /// Serves `backend`'s waiters; with replicas, callbacks stored elsewhere wake them too until
    /// `shutdown`.
    pub fn new(backend: Arc<dyn SlotStore>, shutdown: CancellationToken) -> Self {
        let wakers = Arc::new(Wakers::default());
        backend.wake_on_remote_callbacks(wakers.clone(), shutdown);
        Self {
            backend,
            wakers,
            reads: Semaphore::new(CONCURRENT_READS),
        }
    }

    /// The backend, for what involves no waiting (slots, keys, retention).
    pub fn backend(&self) -> &dyn SlotStore {
        self.backend.as_ref()
    }

    /// Stores a callback and wakes the slot's waiters. A failed write wakes them too: the
    /// callback may be stored all the same (committed, then its sync failed), and they read
    /// what is there.
    pub async fn add_callback(&self, callback: NewCallback) -> Result<AddOutcome, StoreError> {
        let slot = callback.slot_id.clone();
        let outcome = self.backend.add_callback(callback).await;
        if !matches!(outcome, Ok(AddOutcome::Full | AddOutcome::NoSlot)) {
            self.wakers.wake(&slot);
        }
        outcome
    }

    /// The slot's callbacks after sequence `after` (at most `limit`), waiting until `until` for
    /// the first; empty when the wait ends with none or `stop` completes. `on_waiting` runs once,
    /// when the store had nothing and the poll starts to wait, and what it returns is held until
    /// the poll is answered (a gauge's guard).
    pub async fn wait_for_callbacks<G>(
        &self,
        slot: &SlotId,
        after: u64,
        limit: u32,
        until: Instant,
        stop: impl Future<Output = ()>,
        on_waiting: impl FnOnce() -> G,
    ) -> Result<Vec<Delivery>, StoreError> {
        let registration = self.wakers.register(slot);
        tokio::pin!(stop);
        let mut on_waiting = Some(on_waiting);
        let mut _waiting = None;
        loop {
            // Armed before the read, so a callback stored in between still wakes this poll.
            let woken = registration.notify().notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let callbacks = {
                // The semaphore is never closed, so a permit always comes.
                let _permit = self.reads.acquire().await.ok();
                self.backend.callbacks_after(slot, after, limit).await?
            };
            if !callbacks.is_empty() || Instant::now() >= until {
                return Ok(callbacks);
            }
            if let Some(started) = on_waiting.take() {
                _waiting = Some(started());
            }
            tokio::select! {
                () = woken => {},
                () = tokio::time::sleep_until(until) => {},
                () = &mut stop => return Ok(Vec::new()),
            }
        }
    }

    /// Finishes pending writes and closes the connections.
    pub async fn close(&self) {
        self.backend.close().await;
    }
}
