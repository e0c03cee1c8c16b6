//! Standard Webhooks (v1, symmetric): headers `webhook-id`, `webhook-timestamp` (Unix seconds)
//! and `webhook-signature`, a space-separated list of `<version>,<base64>` entries where `v1` is
//! the base64 HMAC-SHA256 of `id.timestamp.body`.
//!
//! Rules, as in the reference libraries: any matching `v1` entry passes; other versions
//! (`v1a`, ...) and entries without a comma are skipped; the timestamp may be at most five
//! minutes behind or ahead of the verifier's clock (exactly five minutes passes); the
//! comparison is constant-time.

use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{SecretError, SignatureError};
use crate::headers::{HeaderSource, present};

/// The message id header (the relay de-duplicates on it).
pub const ID_HEADER: &str = "webhook-id";
/// The Unix-seconds timestamp header.
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// The signature list header.
pub const SIGNATURE_HEADER: &str = "webhook-signature";
/// How far `webhook-timestamp` may be from the verifier's clock, either way, in seconds.
pub const TOLERANCE_SECONDS: i64 = 5 * 60;
/// The prefix of serialized secrets.
pub const SECRET_PREFIX: &str = "whsec_";

const SIGNATURE_LEN: usize = 32;

/// Secrets are decoded leniently (missing padding, non-zero trailing bits), as the Python
/// reference library does: people paste secrets, and a secret that decodes to the same bytes
/// elsewhere must work here too. Signatures are decoded strictly.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// A Standard Webhooks secret: `whsec_` followed by base64, or the base64 alone; the key is the
/// decoded bytes. Never printed.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Parses a secret as configured.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let encoded = text.trim();
        let encoded = encoded.strip_prefix(SECRET_PREFIX).unwrap_or(encoded);
        if encoded.is_empty() {
            return Err(SecretError::Empty);
        }
        let key = LENIENT
            .decode(encoded)
            .map_err(|_| SecretError::NotBase64)?;
        if key.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Self(key))
    }

    /// A new random secret of 32 bytes, serialized as `whsec_<base64>` (for tests and for
    /// generating configuration).
    pub fn generate() -> String {
        let key: [u8; 32] = rand::random();
        format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
    }

    fn mac(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
        // HMAC takes keys of any length; the error branch cannot happen.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }
}

impl std::str::FromStr for Secret {
    type Err = SecretError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The three headers of a signed message, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// `webhook-id`.
    pub id: String,
    /// `webhook-timestamp`.
    pub timestamp: String,
    /// `webhook-signature`.
    pub signature: String,
}

impl SignedHeaders {
    /// The headers as `(name, value)` pairs.
    pub fn to_pairs(&self) -> [(&'static str, String); 3] {
        [
            (ID_HEADER, self.id.clone()),
            (TIMESTAMP_HEADER, self.timestamp.clone()),
            (SIGNATURE_HEADER, self.signature.clone()),
        ]
    }
}

/// The `webhook-signature` value for one message: `v1,<base64>`.
pub fn sign(secret: &Secret, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mac = secret.mac(msg_id, timestamp, body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// All three headers for `body`, signed at `now` with message id `msg_id`. A retry of the same
/// delivery keeps `msg_id` so the receiver can recognise it.
pub fn signed_headers(
    secret: &Secret,
    msg_id: &str,
    now: SystemTime,
    body: &[u8],
) -> SignedHeaders {
    let timestamp = crate::unix_seconds(now);
    SignedHeaders {
        id: msg_id.to_string(),
        timestamp: timestamp.to_string(),
        signature: sign(secret, msg_id, timestamp, body),
    }
}

/// A fresh message id: `msg_` and 26 random base32 characters (130 bits).
pub fn new_message_id() -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    // 256 is a multiple of 32, so `% 32` keeps every character equally likely.
    let bytes: [u8; 26] = rand::random();
    let id: String = bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(b % 32)]))
        .collect();
    format!("msg_{id}")
}

/// When the message says it was signed (`webhook-timestamp`), if the header is a valid
/// integer. The signature covers the timestamp, so after [`verify`] this is trustworthy; a
/// verifier can refuse messages signed before the slot they arrived in was opened (a replay of
/// an older delivery made with the same secret).
pub fn signed_at<H: HeaderSource + ?Sized>(headers: &H) -> Option<SystemTime> {
    let seconds = parse_timestamp(present(headers, TIMESTAMP_HEADER)?).ok()?;
    let seconds = u64::try_from(seconds).ok()?;
    std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(seconds))
}

/// What the relay can check without the secret: the three headers are present, the timestamp
/// is a whole number within [`TOLERANCE_SECONDS`] of `now`, and the signature header holds at
/// least one well-formed `v1` entry (base64 of 32 bytes).
pub fn check_form<H: HeaderSource + ?Sized>(
    headers: &H,
    now: SystemTime,
) -> Result<(), SignatureError> {
    parse(headers, now).map(|_| ())
}

/// Verifies a Standard Webhooks message: [`check_form`]'s checks, then that one `v1` entry is
/// the HMAC of `id.timestamp.body` with `secret`, compared in constant time.
pub fn verify<H: HeaderSource + ?Sized>(
    secret: &Secret,
    headers: &H,
    body: &[u8],
    now: SystemTime,
) -> Result<(), SignatureError> {
    let parsed = parse(headers, now)?;
    let expected = secret.mac(parsed.id, parsed.timestamp, body);
    // Check every candidate (no early exit) so timing does not tell which entry matched.
    let mut matched = false;
    for candidate in &parsed.signatures {
        matched |= expected.clone().verify_slice(candidate).is_ok();
    }
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

struct Parsed<'h> {
    id: &'h str,
    timestamp: i64,
    signatures: Vec<Vec<u8>>,
}

fn parse<H: HeaderSource + ?Sized>(
    headers: &H,
    now: SystemTime,
) -> Result<Parsed<'_>, SignatureError> {
    let id =
        present(headers, ID_HEADER).ok_or(SignatureError::MissingHeader { name: ID_HEADER })?;
    let timestamp = present(headers, TIMESTAMP_HEADER).ok_or(SignatureError::MissingHeader {
        name: TIMESTAMP_HEADER,
    })?;
    let signature = present(headers, SIGNATURE_HEADER).ok_or(SignatureError::MissingHeader {
        name: SIGNATURE_HEADER,
    })?;

    let timestamp = parse_timestamp(timestamp)?;
    let now = crate::unix_seconds(now);
    let age = now.saturating_sub(timestamp);
    if age > TOLERANCE_SECONDS {
        return Err(SignatureError::TimestampTooOld {
            age_seconds: age,
            tolerance_seconds: TOLERANCE_SECONDS,
        });
    }
    if -age > TOLERANCE_SECONDS {
        return Err(SignatureError::TimestampTooNew {
            ahead_seconds: -age,
            tolerance_seconds: TOLERANCE_SECONDS,
        });
    }

    let signatures: Vec<Vec<u8>> = signature
        .split(' ')
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == "v1")
        .filter_map(|(_, encoded)| STANDARD.decode(encoded).ok())
        .filter(|decoded| decoded.len() == SIGNATURE_LEN)
        .collect();
    if signatures.is_empty() {
        return Err(SignatureError::MalformedHeader {
            name: SIGNATURE_HEADER,
            reason: "no `v1,<base64 of 32 bytes>` entry",
        });
    }
    Ok(Parsed {
        id,
        timestamp,
        signatures,
    })
}

/// Digits only (an optional leading `-` aside), as the header is written by every library.
fn parse_timestamp(text: &str) -> Result<i64, SignatureError> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::InvalidTimestamp);
    }
    text.parse().map_err(|_| SignatureError::InvalidTimestamp)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn round_trip_with_generated_secret() {
        let secret = Secret::parse(&Secret::generate()).unwrap();
        let headers = signed_headers(&secret, "msg_1", at(1_700_000_000), b"{}");
        let pairs = headers.to_pairs();
        verify(&secret, &pairs, b"{}", at(1_700_000_100)).unwrap();
        assert_eq!(
            verify(&secret, &pairs, b"{ }", at(1_700_000_100)),
            Err(SignatureError::Mismatch)
        );
        check_form(&pairs, at(1_700_000_000)).unwrap();
        assert_eq!(signed_at(&pairs), Some(at(1_700_000_000)));
        assert_eq!(signed_at(&[(TIMESTAMP_HEADER, "soon")]), None);
    }

    #[test]
    fn message_ids_are_fresh_and_well_formed() {
        let a = new_message_id();
        let b = new_message_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 4 + 26);
        assert!(a.starts_with("msg_"));
        assert!(
            a[4..]
                .bytes()
                .all(|c| c.is_ascii_lowercase() || (b'2'..=b'7').contains(&c))
        );
    }

    #[test]
    fn timestamps_must_be_plain_integers() {
        assert_eq!(parse_timestamp("1614265330"), Ok(1_614_265_330));
        assert_eq!(
            parse_timestamp("+1614265330"),
            Err(SignatureError::InvalidTimestamp)
        );
        assert_eq!(
            parse_timestamp("1.5"),
            Err(SignatureError::InvalidTimestamp)
        );
        assert_eq!(parse_timestamp("-"), Err(SignatureError::InvalidTimestamp));
        assert_eq!(
            parse_timestamp("99999999999999999999"),
            Err(SignatureError::InvalidTimestamp)
        );
    }

    #[test]
    fn secret_is_not_in_debug_output() {
        let text = Secret::generate();
        let secret = Secret::parse(&text).unwrap();
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        assert_eq!(
            Secret::parse("whsec_!!!").unwrap_err(),
            SecretError::NotBase64
        );
    }
}
