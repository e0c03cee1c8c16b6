//! The errors shared by the two HMAC schemes. None of them carries a secret or a signature
//! value, so they are safe to log and to return to a client.

/// Why a text is not a usable HMAC secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The secret is empty (or is only the `whsec_` prefix).
    #[error("the HMAC secret is empty")]
    Empty,
    /// A Standard Webhooks secret is not base64 (after an optional `whsec_` prefix).
    #[error(
        "the Standard Webhooks secret is not base64 (expected `whsec_` followed by base64, or base64 alone)"
    )]
    NotBase64,
}

/// Why a signed callback was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A header the scheme needs is absent (or empty).
    #[error("missing `{name}` header")]
    MissingHeader {
        /// The header's name, in lower case.
        name: &'static str,
    },
    /// A signature header is present but not in the scheme's form.
    #[error("malformed `{name}` header: {reason}")]
    MalformedHeader {
        /// The header's name, in lower case.
        name: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `webhook-timestamp` is not a whole number of seconds.
    #[error("`webhook-timestamp` is not a Unix time in whole seconds")]
    InvalidTimestamp,
    /// `webhook-timestamp` is more than the tolerance in the past (a replay or a slow queue).
    #[error(
        "`webhook-timestamp` is {age_seconds} s old, more than the {tolerance_seconds} s allowed"
    )]
    TimestampTooOld {
        /// How far the timestamp is behind the verifier's clock.
        age_seconds: i64,
        /// The tolerance in seconds.
        tolerance_seconds: i64,
    },
    /// `webhook-timestamp` is more than the tolerance in the future (a skewed clock).
    #[error(
        "`webhook-timestamp` is {ahead_seconds} s in the future, more than the {tolerance_seconds} s allowed"
    )]
    TimestampTooNew {
        /// How far the timestamp is ahead of the verifier's clock.
        ahead_seconds: i64,
        /// The tolerance in seconds.
        tolerance_seconds: i64,
    },
    /// The header is well formed but no signature in it matches the body and secret.
    #[error("the signature does not match the body")]
    Mismatch,
    /// The verifier's secret is unusable (a configuration error, not the sender's fault).
    #[error(transparent)]
    Secret(#[from] SecretError),
}
