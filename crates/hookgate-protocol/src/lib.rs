//! What crosses between the waiting run, the relay and `hookgate callback`, written once: the
//! slot and its terms, how callbacks authenticate, a delivery as stored and as served, the long
//! poll's answer, error answers and the verdict a callback carries. The relay serves these types,
//! the run reads them back with the same types through [`client::RelayClient`], and the engine
//! speaks of slots and deliveries in them too.
//!
//! # Compatibility
//!
//! Runners and relays are upgraded apart, so every wire type follows one rule: a reader ignores
//! members it does not know, and a member added later is optional (absent means what the older
//! version did) and left out when unset. An older runner therefore reads a newer relay's answers,
//! and a relay of this version takes a newer runner's requests; removing or retyping a member
//! needs a new path (`/v2/...`). The tests in `tests/wire.rs` hold this for every type.
//!
//! One exception is in the field: relays from before this crate refused unknown members in
//! `POST /v1/slots` (`CreateSlot`). A member added to `CreateSlot` must therefore be left out of
//! the request unless it is set, so that a runner that does not use it still works with them.

pub mod answer;
pub mod client;
pub mod delivery;
pub mod slot;
mod time;
pub mod verdict;

pub use answer::{Accepted, ErrorAnswer};
pub use client::{ClientError, Credential, FetchCredential, RelayClient};
pub use delivery::{Delivery, SlotCallbacks};
pub use slot::{CallbackAuth, CreateSlot, Deadline, InvalidSlotId, SlotCreated, SlotId};
pub use verdict::{CallbackKind, Verdict, VerdictError};
