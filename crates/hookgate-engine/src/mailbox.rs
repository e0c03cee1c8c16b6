//! The engine's view of a relay: somewhere to open a callback slot and to wait for what arrives
//! in it. The relay crate's client implements it over HTTP (a remote or an embedded relay); tests
//! may use any other implementation. The engine verifies every callback itself, from the raw body
//! and headers, so an implementation only has to deliver bytes faithfully.

use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;

use crate::request::header_names;

/// How the service that is called must authenticate its callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotAuth {
    /// With `Authorization: Bearer <token>`, the token the relay issues for this slot alone.
    Bearer,
    /// With an HMAC signature of the body (GitHub's form).
    HmacGithub,
    /// With an HMAC signature of the body (Standard Webhooks).
    HmacStandard,
}

/// What the engine asks for when it opens a slot.
#[derive(Debug, Clone)]
pub struct SlotRequest {
    /// How callbacks authenticate.
    pub auth: SlotAuth,
    /// After this instant the slot takes no more callbacks.
    pub deadline: SystemTime,
    /// A label for the relay's logs (the step's name); never secret.
    pub label: String,
}

/// An open slot.
#[derive(Clone)]
pub struct OpenSlot {
    /// The slot's id.
    pub id: String,
    /// Where the service must send its callback (`{{ callback.uri }}`, `{{ armory.callbackUri }}`).
    pub callback_url: String,
    /// For bearer slots: the token the callback must carry (`{{ callback.token }}`). Secret.
    pub token: Option<String>,
    /// The deadline the relay granted.
    pub deadline: SystemTime,
}

impl std::fmt::Debug for OpenSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenSlot")
            .field("id", &self.id)
            .field("callback_url", &self.callback_url)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("deadline", &self.deadline)
            .finish()
    }
}

/// One delivery as the relay stored it: raw bytes and headers, untouched. A header may carry
/// the slot's token, so `Debug` shows header names only.
#[derive(Clone)]
pub struct ReceivedCallback {
    /// The relay's sequence number of this delivery within its slot (increasing from 1).
    pub sequence: u64,
    /// When the relay stored it.
    pub received_at: SystemTime,
    /// The request headers, names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
}

impl std::fmt::Debug for ReceivedCallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceivedCallback")
            .field("sequence", &self.sequence)
            .field("received_at", &self.received_at)
            .field("headers", &header_names(&self.headers))
            .field("body_len", &self.body.len())
            .finish()
    }
}

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
    fn open(&self, request: SlotRequest) -> BoxFuture<'_, Result<OpenSlot, MailboxError>>;

    /// Returns the deliveries with a sequence number above `after`, waiting up to `wait` for the
    /// first one; an empty list when the wait ends with none.
    fn wait<'a>(
        &'a self,
        slot: &'a OpenSlot,
        after: u64,
        wait: Duration,
    ) -> BoxFuture<'a, Result<Vec<ReceivedCallback>, MailboxError>>;
}
