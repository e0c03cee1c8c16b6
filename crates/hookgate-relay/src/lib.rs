//! The hookgate relay: a small HTTP service that takes callbacks for waiting runs, keeps them
//! durably, and answers the runs' long polls. Runners take no inbound traffic, so the service a
//! gate calls sends its verdict here, and the waiting run fetches it. The relay is a mailbox, not a
//! judge: it never holds the HMAC secrets, stores raw bodies and signature headers untouched, and
//! the run verifies them again, so a compromised relay cannot turn a failure into a success.
//!
//! [`run`] serves a [`RelayConfig`] on a listener (the `hookgate relay` command);
//! [`EmbeddedRelay`] runs one in-process. What crosses the wire, and the client a waiting run
//! uses, live in `hookgate-protocol`.

pub mod config;
mod embedded;
mod error;
mod metrics;
pub mod oidc;
mod server;
mod slot_cache;
pub mod store;
pub mod wakers;

pub use config::RelayConfig;
pub use embedded::EmbeddedRelay;
pub use server::{Extension, LocalError, LocalSlots, RelayError, run, serve, serve_with};
