//! The HMAC scheme a callback uses, chosen by configuration (`callback.scheme` in the
//! deployment file, `--scheme` of `hookgate callback`), with one entry point per job: sign
//! (the sender), check the form (the relay, without the secret), verify (the action).

use std::time::SystemTime;

use crate::error::{SecretError, SignatureError};
use crate::headers::HeaderSource;
use crate::{github, standard};

/// An HMAC signature scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Scheme {
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>`.
    #[default]
    Standard,
    /// GitHub's form: `X-Hub-Signature-256: sha256=<hex>`.
    Github,
}

impl Scheme {
    /// The name used in configuration: `standard` or `github`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Standard => "standard",
            Scheme::Github => "github",
        }
    }

    /// The headers that carry this scheme's signature, in lower case.
    pub fn header_names(self) -> &'static [&'static str] {
        match self {
            Scheme::Standard => &[
                standard::ID_HEADER,
                standard::TIMESTAMP_HEADER,
                standard::SIGNATURE_HEADER,
            ],
            Scheme::Github => &[github::HEADER],
        }
    }

    /// Signs `body` with the secret as configured and returns the headers to send.
    /// `msg_id` and `now` are used by Standard Webhooks only; keep `msg_id` across retries of
    /// one delivery.
    pub fn sign(
        self,
        secret: &str,
        msg_id: &str,
        now: SystemTime,
        body: &[u8],
    ) -> Result<Vec<(&'static str, String)>, SecretError> {
        Ok(match self {
            Scheme::Standard => {
                let secret = standard::Secret::parse(secret)?;
                standard::signed_headers(&secret, msg_id, now, body)
                    .to_pairs()
                    .into()
            }
            Scheme::Github => {
                let secret = github::Secret::new(secret)?;
                vec![(github::HEADER, github::sign(&secret, body))]
            }
        })
    }

    /// The relay's check, without the secret: the signature headers are present and well
    /// formed and (Standard Webhooks) the timestamp is fresh.
    pub fn check_form<H: HeaderSource + ?Sized>(
        self,
        headers: &H,
        now: SystemTime,
    ) -> Result<(), SignatureError> {
        match self {
            Scheme::Standard => standard::check_form(headers, now),
            Scheme::Github => github::check_form(headers.header(github::HEADER)),
        }
    }

    /// The action's check: the signature in `headers` matches the raw `body` and the secret
    /// as configured. A secret that cannot be parsed gives [`SignatureError::Secret`].
    pub fn verify<H: HeaderSource + ?Sized>(
        self,
        secret: &str,
        headers: &H,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), SignatureError> {
        match self {
            Scheme::Standard => {
                let secret = standard::Secret::parse(secret)?;
                standard::verify(&secret, headers, body, now)
            }
            Scheme::Github => {
                let secret = github::Secret::new(secret)?;
                github::verify(&secret, body, headers.header(github::HEADER))
            }
        }
    }
}

impl std::fmt::Display for Scheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text is neither `standard` nor `github`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown HMAC scheme `{0}` (expected `standard` or `github`)")]
pub struct UnknownScheme(pub String);

impl std::str::FromStr for Scheme {
    type Err = UnknownScheme;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "standard" | "standard-webhooks" => Ok(Scheme::Standard),
            "github" => Ok(Scheme::Github),
            _ => Err(UnknownScheme(text.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn every_scheme_verifies_what_it_signs_and_nothing_else() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let secret = standard::Secret::generate();
        for scheme in [Scheme::Standard, Scheme::Github] {
            let headers = scheme
                .sign(&secret, "msg_a", now, b"{\"success\":true}")
                .unwrap();
            assert_eq!(
                headers.iter().map(|(name, _)| *name).collect::<Vec<_>>(),
                scheme.header_names()
            );
            scheme.check_form(&headers, now).unwrap();
            scheme
                .verify(&secret, &headers, b"{\"success\":true}", now)
                .unwrap();
            assert_eq!(
                scheme.verify(&secret, &headers, b"{\"success\":false}", now),
                Err(SignatureError::Mismatch),
                "{scheme}"
            );
        }
    }

    #[test]
    fn parses_names() {
        assert_eq!("github".parse::<Scheme>().unwrap(), Scheme::Github);
        assert_eq!("Standard".parse::<Scheme>().unwrap(), Scheme::Standard);
        assert!("sha1".parse::<Scheme>().is_err());
    }
}
