//! Bearer tokens scoped to one relay slot: HS256 JWTs whose subject is the slot id, whose
//! audience is the relay and whose expiry is the slot's deadline, so any replica that shares the
//! relay key can check a callback's token without a lookup.
//!
//! Verification is deliberately narrower than JWT allows:
//! - the header's `alg` must be exactly `HS256`; `none` in any spelling, other HMAC sizes and
//!   asymmetric algorithms (the RS/HS confusion) are refused before any key is used;
//! - headers that choose a key (`kid`, `jku`, `jwk`, `x5u`, `x5c`, `x5t`, `x5t#S256`) or demand
//!   extensions (`crit`) are refused: this relay issues none of them and has one key;
//! - `iss`, `aud`, `sub` and `exp` are all required; `nbf` is honoured when present;
//! - the clock is the caller's `now`, with no leeway unless one is configured.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::Sha256;

/// The issuer written into tokens unless [`SlotTokens::with_issuer`] sets another.
pub const DEFAULT_ISSUER: &str = "hookgate-relay";
/// The shortest relay key accepted, in bytes (the HS256 output size, RFC 7518 section 3.2).
pub const MIN_KEY_LEN: usize = 32;

const ALGORITHM: &str = "HS256";
const KEY_SELECTING_HEADERS: [&str; 8] =
    ["kid", "jku", "jwk", "x5u", "x5c", "x5t", "x5t#S256", "crit"];

/// The relay key is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenKeyError {
    /// The key is shorter than [`MIN_KEY_LEN`] bytes.
    #[error("the relay key has {len} bytes; at least {MIN_KEY_LEN} random bytes are required")]
    TooShort {
        /// The key's length in bytes.
        len: usize,
    },
}

/// Why a slot token was refused (or could not be issued). No variant carries the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url segments with a JSON object header.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The header names an algorithm other than HS256 (including `none`).
    #[error("token algorithm `{found}` is not accepted (only HS256)")]
    WrongAlgorithm {
        /// The header's `alg`, as written (cut to 32 characters).
        found: String,
    },
    /// The header carries a parameter this relay never issues (`kid`, `jku`, `jwk`, ...).
    #[error("token header parameter `{name}` is not accepted")]
    UnexpectedHeader {
        /// The parameter's name.
        name: &'static str,
    },
    /// The signature does not match the relay key.
    #[error("token signature does not match")]
    BadSignature,
    /// The payload is not a JSON object, or writes a claim twice.
    #[error("token claims are not a JSON object with each claim once")]
    MalformedClaims,
    /// A required claim is absent.
    #[error("token lacks the `{name}` claim")]
    MissingClaim {
        /// The claim's name.
        name: &'static str,
    },
    /// A claim has the wrong type (such as `exp` as a string).
    #[error("token claim `{name}` has the wrong type")]
    InvalidClaim {
        /// The claim's name.
        name: &'static str,
    },
    /// `iss` is not this relay's issuer.
    #[error("token was issued by someone else")]
    WrongIssuer,
    /// `aud` does not name this relay.
    #[error("token is meant for another audience")]
    WrongAudience,
    /// `sub` is another slot.
    #[error("token belongs to another slot")]
    WrongSlot,
    /// `exp` has passed.
    #[error("token expired")]
    Expired,
    /// `nbf` is still in the future.
    #[error("token is not valid yet")]
    NotYetValid,
    /// Signing failed (not expected with HMAC).
    #[error("cannot sign the token: {0}")]
    Signing(String),
}

/// The claims of a verified slot token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotClaims {
    /// Issuer: the relay.
    pub iss: String,
    /// Subject: the slot id.
    pub sub: String,
    /// Audience: the relay's public identity (its URL, typically).
    pub aud: String,
    /// Expiry, Unix seconds: the slot's deadline.
    pub exp: u64,
    /// Issued at, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// A random token id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

/// Issues and verifies slot tokens with one relay key. `Debug` never shows the key.
#[derive(Clone)]
pub struct SlotTokens {
    encoding: EncodingKey,
    /// HMAC-SHA256 with the relay key absorbed: each verification starts from a copy.
    verifying: Hmac<Sha256>,
    issuer: String,
    leeway_seconds: u64,
}

impl std::fmt::Debug for SlotTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotTokens")
            .field("key", &"***")
            .field("issuer", &self.issuer)
            .field("leeway_seconds", &self.leeway_seconds)
            .finish()
    }
}

impl SlotTokens {
    /// Uses `key` (at least [`MIN_KEY_LEN`] random bytes, shared by every replica).
    pub fn new(key: &[u8]) -> Result<Self, TokenKeyError> {
        if key.len() < MIN_KEY_LEN {
            return Err(TokenKeyError::TooShort { len: key.len() });
        }
        Ok(Self {
            encoding: EncodingKey::from_secret(key),
            verifying: <Hmac<Sha256> as Mac>::new_from_slice(key)
                .map_err(|_| TokenKeyError::TooShort { len: key.len() })?,
            issuer: DEFAULT_ISSUER.to_string(),
            leeway_seconds: 0,
        })
    }

    /// A fresh random key of 32 bytes (for a single relay process, such as the embedded one).
    pub fn generate_key() -> [u8; 32] {
        rand::random()
    }

    /// Writes and requires `issuer` as `iss` instead of [`DEFAULT_ISSUER`].
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = issuer.into();
        self
    }

    /// Tolerates clocks that differ by up to `leeway` when checking `exp` and `nbf`.
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway_seconds = leeway.as_secs();
        self
    }

    /// A token for `slot_id`, meant for `audience`, issued at `now` and valid until
    /// `expires_at`, with a random `jti`.
    pub fn issue(
        &self,
        slot_id: &str,
        audience: &str,
        now: SystemTime,
        expires_at: SystemTime,
    ) -> Result<String, TokenError> {
        let jti: [u8; 16] = rand::random();
        let claims = SlotClaims {
            iss: self.issuer.clone(),
            sub: slot_id.to_string(),
            aud: audience.to_string(),
            exp: unsigned_seconds(expires_at),
            iat: Some(unsigned_seconds(now)),
            jti: Some(hex::encode(jti)),
        };
        jsonwebtoken::encode(&issued_header(), &claims, &self.encoding)
            .map_err(|err| TokenError::Signing(err.to_string()))
    }

    /// Verifies `token` for slot `expected_slot_id` and `audience` at `now`: algorithm and
    /// header first, then the signature, then `iss`, `aud`, `exp`, `nbf` and `sub`.
    pub fn verify(
        &self,
        token: &str,
        expected_slot_id: &str,
        audience: &str,
        now: SystemTime,
    ) -> Result<SlotClaims, TokenError> {
        let (header, payload, signature) = segments(token)?;
        check_header(header)?;
        // The signature covers the first two segments as written (RFC 7515 section 5.2).
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Malformed("signature is not unpadded base64url"))?;
        let mut mac = self.verifying.clone();
        mac.update(&token.as_bytes()[..header.len() + 1 + payload.len()]);
        // `verify_slice` compares in constant time.
        mac.verify_slice(&signature)
            .map_err(|_| TokenError::BadSignature)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Malformed("payload is not unpadded base64url"))?;
        let claims: ClaimsAsWritten =
            serde_json::from_slice(&payload).map_err(|_| TokenError::MalformedClaims)?;

        let iss = string_claim(claims.iss, "iss")?;
        if iss != self.issuer {
            return Err(TokenError::WrongIssuer);
        }
        let aud = match claims.aud {
            None | Some(Value::Null) => return Err(TokenError::MissingClaim { name: "aud" }),
            Some(Value::String(aud)) if aud == audience => aud,
            Some(Value::String(_)) => return Err(TokenError::WrongAudience),
            Some(Value::Array(items)) => {
                if !items.iter().all(Value::is_string) {
                    return Err(TokenError::InvalidClaim { name: "aud" });
                }
                if !items.iter().any(|item| item.as_str() == Some(audience)) {
                    return Err(TokenError::WrongAudience);
                }
                audience.to_string()
            }
            Some(_) => return Err(TokenError::InvalidClaim { name: "aud" }),
        };
        let now = unsigned_seconds(now);
        let exp = time_claim(claims.exp.as_ref(), "exp")?
            .ok_or(TokenError::MissingClaim { name: "exp" })?;
        // RFC 7519 4.1.4: not accepted on or after `exp`.
        if now >= exp.saturating_add(self.leeway_seconds) {
            return Err(TokenError::Expired);
        }
        if let Some(nbf) = time_claim(claims.nbf.as_ref(), "nbf")?
            && now.saturating_add(self.leeway_seconds) < nbf
        {
            return Err(TokenError::NotYetValid);
        }
        let sub = string_claim(claims.sub, "sub")?;
        if sub != expected_slot_id {
            return Err(TokenError::WrongSlot);
        }
        Ok(SlotClaims {
            iss,
            sub,
            aud,
            exp,
            iat: time_claim(claims.iat.as_ref(), "iat")?,
            jti: match claims.jti {
                Some(Value::String(jti)) => Some(jti),
                _ => None,
            },
        })
    }
}

/// The claims a slot token's checks read, each as written: absent (`None`), or present with
/// any JSON value, `null` included. The claims must be a JSON object; other members are read
/// and ignored, and a claim read here that is written twice makes the claims malformed
/// (RFC 7519 section 4 lets a parser refuse duplicate names).
#[derive(Default)]
struct ClaimsAsWritten {
    iss: Option<Value>,
    sub: Option<Value>,
    aud: Option<Value>,
    exp: Option<Value>,
    nbf: Option<Value>,
    iat: Option<Value>,
    jti: Option<Value>,
}

impl<'de> Deserialize<'de> for ClaimsAsWritten {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ClaimsVisitor)
    }
}

/// Reads the claims from a JSON object, and from nothing else.
struct ClaimsVisitor;

impl<'de> serde::de::Visitor<'de> for ClaimsVisitor {
    type Value = ClaimsAsWritten;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a JSON object of claims")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut claims = ClaimsAsWritten::default();
        while let Some(name) = map.next_key::<ClaimName>()? {
            let value: Value = map.next_value()?;
            let slot = match name {
                ClaimName::Iss => &mut claims.iss,
                ClaimName::Sub => &mut claims.sub,
                ClaimName::Aud => &mut claims.aud,
                ClaimName::Exp => &mut claims.exp,
                ClaimName::Nbf => &mut claims.nbf,
                ClaimName::Iat => &mut claims.iat,
                ClaimName::Jti => &mut claims.jti,
                ClaimName::Other => continue,
            };
            if slot.replace(value).is_some() {
                return Err(serde::de::Error::custom("a claim is written twice"));
            }
        }
        Ok(claims)
    }
}

/// A claim's name, read without allocating.
enum ClaimName {
    Iss,
    Sub,
    Aud,
    Exp,
    Nbf,
    Iat,
    Jti,
    Other,
}

impl<'de> Deserialize<'de> for ClaimName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(ClaimNameVisitor)
    }
}

struct ClaimNameVisitor;

impl serde::de::Visitor<'_> for ClaimNameVisitor {
    type Value = ClaimName;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a claim name")
    }

    fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<ClaimName, E> {
        Ok(match name {
            "iss" => ClaimName::Iss,
            "sub" => ClaimName::Sub,
            "aud" => ClaimName::Aud,
            "exp" => ClaimName::Exp,
            "nbf" => ClaimName::Nbf,
            "iat" => ClaimName::Iat,
            "jti" => ClaimName::Jti,
            _ => ClaimName::Other,
        })
    }
}

/// The header of every token issued.
fn issued_header() -> Header {
    Header::new(Algorithm::HS256)
}

/// The three dot-separated segments of a compact JWS: header, payload, signature.
fn segments(token: &str) -> Result<(&str, &str, &str), TokenError> {
    let mut segments = token.split('.');
    match (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) {
        (Some(header), Some(payload), Some(signature), None) => Ok((header, payload, signature)),
        _ => Err(TokenError::Malformed(
            "expected three dot-separated segments",
        )),
    }
}

/// Refuses any algorithm but HS256 and any key-selecting header, before a key is touched.
/// `header` is the token's first segment.
fn check_header(header: &str) -> Result<(), TokenError> {
    let header = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| TokenError::Malformed("header is not unpadded base64url"))?;
    let header: Map<String, Value> = serde_json::from_slice(&header)
        .map_err(|_| TokenError::Malformed("header is not a JSON object"))?;
    match header.get("alg") {
        Some(Value::String(alg)) if alg == ALGORITHM => {}
        Some(Value::String(alg)) => {
            return Err(TokenError::WrongAlgorithm {
                found: alg.chars().take(32).collect(),
            });
        }
        _ => {
            return Err(TokenError::WrongAlgorithm {
                found: "(missing)".to_string(),
            });
        }
    }
    if let Some(name) = KEY_SELECTING_HEADERS
        .into_iter()
        .find(|name| header.contains_key(*name))
    {
        return Err(TokenError::UnexpectedHeader { name });
    }
    Ok(())
}

fn string_claim(claim: Option<Value>, name: &'static str) -> Result<String, TokenError> {
    match claim {
        None | Some(Value::Null) => Err(TokenError::MissingClaim { name }),
        Some(Value::String(value)) => Ok(value),
        Some(_) => Err(TokenError::InvalidClaim { name }),
    }
}

/// A NumericDate claim as whole seconds; `None` when absent.
fn time_claim(claim: Option<&Value>, name: &'static str) -> Result<Option<u64>, TokenError> {
    match claim {
        None => Ok(None),
        Some(Value::Number(number)) => number
            .as_u64()
            .or_else(|| {
                // NumericDate may have a fraction (RFC 7519 section 2); round down.
                number
                    .as_f64()
                    .filter(|f| f.is_finite() && *f >= 0.0)
                    .map(|f| f as u64)
            })
            .map(Some)
            .ok_or(TokenError::InvalidClaim { name }),
        Some(_) => Err(TokenError::InvalidClaim { name }),
    }
}

fn unsigned_seconds(time: SystemTime) -> u64 {
    u64::try_from(crate::unix_seconds(time)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::UNIX_EPOCH;

    use super::*;

    const AUDIENCE: &str = "https://relay.example";

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn tokens() -> SlotTokens {
        SlotTokens::new(&[7; 32]).unwrap()
    }

    #[test]
    fn issued_tokens_verify_for_their_slot_until_the_deadline() {
        let tokens = tokens();
        let token = tokens
            .issue("slot-1", AUDIENCE, at(1000), at(2000))
            .unwrap();
        let claims = tokens.verify(&token, "slot-1", AUDIENCE, at(1999)).unwrap();
        assert_eq!(claims.sub, "slot-1");
        assert_eq!(claims.aud, AUDIENCE);
        assert_eq!(claims.iss, DEFAULT_ISSUER);
        assert_eq!((claims.exp, claims.iat), (2000, Some(1000)));
        assert_eq!(claims.jti.as_deref().map(str::len), Some(32));

        assert_eq!(
            tokens.verify(&token, "slot-2", AUDIENCE, at(1500)),
            Err(TokenError::WrongSlot)
        );
        assert_eq!(
            tokens.verify(&token, "slot-1", "https://other.example", at(1500)),
            Err(TokenError::WrongAudience)
        );
        assert_eq!(
            tokens.verify(&token, "slot-1", AUDIENCE, at(2000)),
            Err(TokenError::Expired)
        );
        assert_eq!(
            tokens
                .clone()
                .with_leeway(Duration::from_secs(30))
                .verify(&token, "slot-1", AUDIENCE, at(2029))
                .map(|c| c.sub),
            Ok("slot-1".to_string())
        );
        let other_key = SlotTokens::new(&[8; 32]).unwrap();
        assert_eq!(
            other_key.verify(&token, "slot-1", AUDIENCE, at(1500)),
            Err(TokenError::BadSignature)
        );
        let other_issuer = tokens.clone().with_issuer("someone-else");
        assert_eq!(
            other_issuer.verify(&token, "slot-1", AUDIENCE, at(1500)),
            Err(TokenError::WrongIssuer)
        );
    }

    /// A token signed with `[7; 32]` whose claims are `claims`, written as given.
    fn signed_claims(claims: &str) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256"}"#),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&[7; 32]).unwrap();
        mac.update(input.as_bytes());
        format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    }

    #[test]
    fn signed_claims_are_checked_as_written() {
        let tokens = tokens();
        let verify = |claims: &str| {
            tokens
                .verify(&signed_claims(claims), "slot-1", AUDIENCE, at(1000))
                .map(|claims| claims.sub)
        };
        let base = format!(r#""iss":"{DEFAULT_ISSUER}","sub":"slot-1","aud":"{AUDIENCE}""#);
        assert_eq!(
            verify(&format!(r#"{{{base},"exp":2000,"x":[1,{{"y":null}}]}}"#)),
            Ok("slot-1".to_owned())
        );
        // Not an object, or not JSON at all.
        for claims in [
            format!(r#"["{DEFAULT_ISSUER}","slot-1","{AUDIENCE}",2000]"#),
            "[]".to_owned(),
            "2000".to_owned(),
            "null".to_owned(),
            format!(r#"{{{base},"exp":2000"#),
        ] {
            assert_eq!(
                verify(&claims),
                Err(TokenError::MalformedClaims),
                "{claims}"
            );
        }
        // A claim written twice, even with the same value; other members must still be JSON.
        for claims in [
            format!(r#"{{{base},"exp":2000,"exp":2000}}"#),
            format!(r#"{{{base},"exp":2000,"sub":"slot-1"}}"#),
            format!(r#"{{{base},"exp":2000,"x":"\uD800"}}"#),
            format!(r#"{{{base},"exp":2000,"x":1e400}}"#),
        ] {
            assert_eq!(
                verify(&claims),
                Err(TokenError::MalformedClaims),
                "{claims}"
            );
        }
        // `null` is an absent string claim, and a time claim of the wrong type.
        for name in ["iss", "sub", "aud"] {
            let claims = base.replace(&format!(r#""{name}":"#), &format!(r#""was-{name}":"#));
            assert_eq!(
                verify(&format!(r#"{{{claims},"{name}":null,"exp":2000}}"#)),
                Err(TokenError::MissingClaim { name }),
                "{name}"
            );
            assert_eq!(
                verify(&format!(r#"{{{claims},"{name}":7,"exp":2000}}"#)),
                Err(TokenError::InvalidClaim { name }),
                "{name}"
            );
        }
        for name in ["exp", "nbf", "iat"] {
            let exp = if name == "exp" { "" } else { r#","exp":2000"# };
            for value in ["null", r#""1000""#, "-1", "true"] {
                assert_eq!(
                    verify(&format!(r#"{{{base}{exp},"{name}":{value}}}"#)),
                    Err(TokenError::InvalidClaim { name }),
                    "{name}: {value}"
                );
            }
        }
        assert_eq!(
            verify(&format!(r#"{{{base}}}"#)),
            Err(TokenError::MissingClaim { name: "exp" })
        );
    }

    #[test]
    fn key_selecting_headers_are_refused_even_when_signed() {
        let key = [7u8; 32];
        let tokens = SlotTokens::new(&key).unwrap();
        let claims = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"iss":"{DEFAULT_ISSUER}","sub":"slot-1","aud":"{AUDIENCE}","exp":2000}}"#
        ));
        let signed = |header: &str| {
            let input = format!("{}.{claims}", URL_SAFE_NO_PAD.encode(header));
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap();
            mac.update(input.as_bytes());
            format!(
                "{input}.{}",
                URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
            )
        };
        let verify = |token: &str| tokens.verify(token, "slot-1", AUDIENCE, at(1500));
        assert!(verify(&signed(r#"{"alg":"HS256","typ":"JWT"}"#)).is_ok());
        for name in KEY_SELECTING_HEADERS {
            assert_eq!(
                verify(&signed(&format!(r#"{{"alg":"HS256","{name}":null}}"#))),
                Err(TokenError::UnexpectedHeader { name }),
                "{name}"
            );
        }
    }

    #[test]
    fn tampered_segments_are_refused() {
        let tokens = tokens();
        let token = tokens
            .issue("slot-1", AUDIENCE, at(1000), at(2000))
            .unwrap();
        let (header, rest) = token.split_once('.').unwrap();
        let (payload, signature) = rest.split_once('.').unwrap();
        let verify = |token: &str| tokens.verify(token, "slot-1", AUDIENCE, at(1500));
        // Another payload under the same signature: the subject changed to another slot.
        let forged_claims = URL_SAFE_NO_PAD.encode(
            String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap())
                .unwrap()
                .replace("slot-1", "slot-2"),
        );
        assert_eq!(
            verify(&format!("{header}.{forged_claims}.{signature}")),
            Err(TokenError::BadSignature)
        );
        // The signature cut short, lengthened, or not base64url at all.
        assert_eq!(
            verify(&format!("{header}.{payload}.{}", &signature[..20])),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify(&format!("{header}.{payload}.{signature}AAAA")),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify(&format!("{header}.{payload}.{signature}=")),
            Err(TokenError::Malformed("signature is not unpadded base64url"))
        );
        assert_eq!(
            verify(&format!("{header}.{payload}")),
            Err(TokenError::Malformed(
                "expected three dot-separated segments"
            ))
        );
        assert_eq!(
            verify(&format!("{header}.{payload}.{signature}.")),
            Err(TokenError::Malformed(
                "expected three dot-separated segments"
            ))
        );
        assert_eq!(
            verify(&token).map(|claims| claims.sub),
            Ok("slot-1".to_owned())
        );
    }

    #[test]
    fn two_tokens_for_one_slot_differ() {
        let tokens = tokens();
        let a = tokens.issue("s", AUDIENCE, at(1), at(100)).unwrap();
        let b = tokens.issue("s", AUDIENCE, at(1), at(100)).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn short_keys_are_refused() {
        assert_eq!(
            SlotTokens::new(&[1; 31]).unwrap_err(),
            TokenKeyError::TooShort { len: 31 }
        );
        assert!(SlotTokens::new(&SlotTokens::generate_key()).is_ok());
    }

    #[test]
    fn key_is_not_in_debug_output() {
        let debug = format!(
            "{:?}",
            SlotTokens::new(b"0123456789abcdef0123456789abcdef").unwrap()
        );
        assert!(debug.contains("***"), "{debug}");
        assert!(!debug.contains("0123456789abcdef"), "{debug}");
        assert!(!debug.contains("48, 49"), "{debug}");
    }
}
