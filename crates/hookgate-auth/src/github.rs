//! GitHub's webhook signature: `X-Hub-Signature-256: sha256=<hex>`, where the hex is the
//! HMAC-SHA256 of the raw body with the secret's UTF-8 bytes as the key.
//!
//! Only the lowercase hex that GitHub sends is accepted: uppercase hex, a missing `sha256=`
//! prefix and the legacy `sha1=` form are malformed. Other implementations differ on uppercase
//! (octokit's Node verifier refuses it, its web verifier accepts it); refusing keeps one
//! spelling per signature, which the relay's de-duplication relies on.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{SecretError, SignatureError};

/// The header GitHub's form uses, in lower case.
pub const HEADER: &str = "x-hub-signature-256";

const PREFIX: &str = "sha256=";
const HEX_LEN: usize = 64;

/// A GitHub webhook secret: its UTF-8 bytes are the HMAC key, as typed (a `whsec_` prefix is
/// part of the key here). Never printed.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Takes a secret as configured; refuses an empty one.
    pub fn new(text: &str) -> Result<Self, SecretError> {
        if text.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Self(text.as_bytes().to_vec()))
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length; the error branch cannot happen.
        <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"))
    }
}

impl std::str::FromStr for Secret {
    type Err = SecretError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::new(text)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The `X-Hub-Signature-256` value for `body`: `sha256=` and 64 lowercase hex digits.
pub fn sign(secret: &Secret, body: &[u8]) -> String {
    let mut mac = secret.mac();
    mac.update(body);
    format!("{PREFIX}{}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks the header's form without the secret (what the relay can do): present, `sha256=`
/// and 64 lowercase hex digits.
pub fn check_form(header_value: Option<&str>) -> Result<(), SignatureError> {
    parse(header_value).map(|_| ())
}

/// Verifies that `header_value` (the `X-Hub-Signature-256` header, `None` when absent) is the
/// signature of the raw `body` with `secret`. The comparison is constant-time.
pub fn verify(
    secret: &Secret,
    body: &[u8],
    header_value: Option<&str>,
) -> Result<(), SignatureError> {
    let presented = parse(header_value)?;
    let mut mac = secret.mac();
    mac.update(body);
    mac.verify_slice(&presented)
        .map_err(|_| SignatureError::Mismatch)
}

/// The 32 signature bytes of a well-formed header.
fn parse(header_value: Option<&str>) -> Result<Vec<u8>, SignatureError> {
    let value = header_value
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .ok_or(SignatureError::MissingHeader { name: HEADER })?;
    let malformed = |reason| SignatureError::MalformedHeader {
        name: HEADER,
        reason,
    };
    let digits = value
        .strip_prefix(PREFIX)
        .ok_or(malformed("expected `sha256=` followed by the hex digest"))?;
    if digits.len() != HEX_LEN
        || !digits
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(malformed(
            "expected 64 lowercase hex digits after `sha256=`",
        ));
    }
    hex::decode(digits).map_err(|_| malformed("expected 64 lowercase hex digits after `sha256=`"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn signs_and_verifies_its_own_signature() {
        let secret = Secret::new("s3cret").unwrap();
        let header = sign(&secret, b"{\"success\":true}");
        assert!(header.starts_with("sha256="));
        assert_eq!(header.len(), 7 + 64);
        verify(&secret, b"{\"success\":true}", Some(&header)).unwrap();
        assert_eq!(
            verify(&secret, b"{\"success\":false}", Some(&header)),
            Err(SignatureError::Mismatch)
        );
        check_form(Some(&header)).unwrap();
    }

    #[test]
    fn form_errors_are_distinct() {
        assert_eq!(
            check_form(None),
            Err(SignatureError::MissingHeader { name: HEADER })
        );
        assert_eq!(
            check_form(Some(" ")),
            Err(SignatureError::MissingHeader { name: HEADER })
        );
        assert!(matches!(
            check_form(Some("sha256=zz")),
            Err(SignatureError::MalformedHeader { .. })
        ));
    }

    #[test]
    fn secret_is_not_in_debug_output() {
        let secret = Secret::new("hunter2-very-secret").unwrap();
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        assert_eq!(Secret::new("").unwrap_err(), SecretError::Empty);
    }
}
