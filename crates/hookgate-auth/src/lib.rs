//! How a callback proves where it comes from: HMAC signatures in GitHub's form and in the
//! Standard Webhooks form, short-lived bearer tokens scoped to one relay slot, and the
//! constant-time comparisons behind them. Pure functions: no I/O, no clock (the caller passes
//! the current time in), so the relay, the engine and `hookgate callback` agree byte for byte
//! and every rule is testable with fixed vectors.
//!
//! # Security model
//!
//! The relay is a mailbox, not a judge. A callback's verdict (`success: true|false`) is trusted
//! only when the waiting action itself has verified it, so a compromised or buggy relay cannot
//! turn a failure into a success:
//!
//! - **HMAC callbacks.** The relay never holds the HMAC secret. It runs only the format checks
//!   ([`github::check_form`], [`standard::check_form`], or [`Scheme::check_form`]): the
//!   signature header is present and well formed, and (Standard Webhooks) the timestamp is
//!   within five minutes of its clock. Missing, malformed or stale signatures get a 401; the rest
//!   are stored with the raw body bytes and headers untouched. The action, which holds the
//!   secret, verifies the signature again from those raw bytes ([`Scheme::verify`]) and ignores
//!   deliveries that fail.
//! - **Bearer callbacks.** The relay issues a JWT for one slot ([`SlotTokens`]: subject = slot
//!   id, audience = the relay, expiry = the slot's deadline, HS256 only) and hands it to the
//!   action, which passes it to the called service. The relay verifies it on intake (any replica
//!   can, without a lookup) and never stores credentials, so the action cannot check the token
//!   again: a bearer delivery is as trustworthy as the relay that holds it. Only HMAC callbacks
//!   are verified end to end. Relay tokens are compared in constant time ([`bearer_matches`]).
//!
//! An HMAC signature does not name the slot it is meant for: a delivery signed for one run
//! verifies in any run that uses the same secret. Standard Webhooks bounds such a replay with
//! its signed timestamp ([`standard::signed_at`] lets a verifier refuse messages signed before
//! the slot was opened); GitHub's form has no timestamp, so bearer tokens (which do name the
//! slot) or a secret per run give the stronger binding.
//!
//! Secrets and keys never appear in `Debug` output or error messages, and every comparison of a
//! signature or token is constant-time.
//!
//! # Secrets of the two HMAC schemes differ
//!
//! GitHub signs with the secret's UTF-8 bytes as typed. Standard Webhooks secrets are base64
//! text, optionally prefixed with `whsec_`, and the key is the decoded bytes (the reference
//! libraries treat `whsec_K` and `K` alike). The two are separate types ([`github::Secret`],
//! [`standard::Secret`]) so one cannot be used for the other.

pub mod bearer;
pub mod github;
pub mod headers;
pub mod scheme;
pub mod standard;
pub mod token;

mod error;

pub use bearer::{bearer_matches, bearer_token};
pub use error::{SecretError, SignatureError};
pub use headers::HeaderSource;
pub use scheme::{Scheme, UnknownScheme};
pub use token::{SlotClaims, SlotTokens, TokenError, TokenKeyError};

/// Seconds since the Unix epoch; instants before 1970 count as 0.
pub(crate) fn unix_seconds(time: std::time::SystemTime) -> i64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
