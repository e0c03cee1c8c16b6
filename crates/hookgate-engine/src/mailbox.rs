//! The engine's view of a relay: somewhere to open a callback slot and to wait for what arrives
//! in it, in the relay protocol's own terms (`hookgate-protocol`). [`crate::relay_mailbox`]
//! implements it over HTTP with the protocol's client; tests may use any other implementation. The engine verifies every callback itself, from the raw body
//! and headers, so an implementation only has to deliver bytes faithfully.

use std::time::Duration;

use futures::future::BoxFuture;
use hookgate_protocol::{CreateSlot, Delivery, SlotCreated};

/// Why a mailbox call failed.
#[derive(Debug, thiserror::Error)]
pub enum MailboxError {
    /// A failure that may pass (connection refused, 5xx, a relay restart): the engine retries
    /// with backoff until the step's deadline.
    #[error("relay unavailable: {0}")]
    Transient(String),
    /// A failure that will not pass (401, 403, 404 of the slot, a malformed answer).
    #[error("relay refused: {0}")]
    Permanent(String),
}

/// A place callbacks arrive in.
pub trait Mailbox: Send + Sync {
    /// Opens a slot.
    fn open(&self, request: CreateSlot) -> BoxFuture<'_, Result<SlotCreated, MailboxError>>;

    /// Returns the deliveries with a sequence number above `after`, waiting up to `wait` for the
    /// first one; an empty list when the wait ends with none.
    fn wait<'a>(
        &'a self,
        slot: &'a SlotCreated,
        after: u64,
        wait: Duration,
    ) -> BoxFuture<'a, Result<Vec<Delivery>, MailboxError>>;
}
