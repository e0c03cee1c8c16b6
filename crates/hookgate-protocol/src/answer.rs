//! The relay's small answers: a callback taken, and every refusal.

use serde::{Deserialize, Serialize};

use crate::slot::SlotId;

/// The answer to a callback the relay took (202), or had taken before (200).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    /// The slot it went to.
    pub slot: SlotId,
    /// Its sequence number in the slot.
    pub sequence: u64,
}

/// The body of every refusal: a stable machine-readable code and what to fix. Internal failures
/// carry a generic detail; their text stays in the relay's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorAnswer {
    /// For example `unauthorized`, `no_slot`, `too_large`.
    pub code: String,
    /// What went wrong, for people.
    pub detail: String,
}
