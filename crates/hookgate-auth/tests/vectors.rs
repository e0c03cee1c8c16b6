//! Runs every third-party vector in `tests/vectors/` (see its README for origins) through the
//! crate's public API, positive and negative, and counts that none was skipped. Where a file
//! leaves an outcome to the implementation, or documents a pitfall of another library, the
//! expected outcome here is this crate's choice and the comment says so.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use hookgate_auth::{
    SecretError, SignatureError, SlotTokens, TokenError, TokenKeyError, github, standard,
};
use serde_json::Value;
use sha2::Sha256;

fn load(name: &str) -> Value {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path}: {err}"));
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("{path}: {err}"))
}

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

fn str_field<'v>(vector: &'v Value, name: &str) -> &'v str {
    vector[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} in {vector}"))
}

// ---------------------------------------------------------------------------------------------
// GitHub X-Hub-Signature-256

#[test]
fn github_vectors() {
    let file = load("github-webhook-signature.json");
    let mut ran = 0;

    for vector in file["vectors"].as_array().unwrap() {
        let id = str_field(vector, "id");
        let secret = github::Secret::new(str_field(vector, "secret")).unwrap();
        let payload = str_field(vector, "payload").as_bytes();
        let expected = str_field(vector, "expected_header");
        assert_eq!(github::sign(&secret, payload), expected, "{id}");
        assert_eq!(
            github::verify(&secret, payload, Some(expected)),
            Ok(()),
            "{id}"
        );
        assert_eq!(github::check_form(Some(expected)), Ok(()), "{id}");
        ran += 1;
    }

    for vector in file["negative"].as_array().unwrap() {
        let id = str_field(vector, "id");
        assert_eq!(vector["expected"], Value::Bool(false), "{id}");
        let secret = github::Secret::new(str_field(vector, "secret")).unwrap();
        let payload = str_field(vector, "payload").as_bytes();
        let header = vector["header"].as_str();
        let outcome = github::verify(&secret, payload, header);
        let expected = match id {
            "missing-header" => Err(SignatureError::MissingHeader {
                name: github::HEADER,
            }),
            // No `sha256=`, the legacy `sha1=` form, and uppercase hex (this crate's choice;
            // the file leaves it to the implementation) are not GitHub's form at all.
            "wrong-signature" | "hex-without-prefix" | "sha1-prefix" | "uppercase-hex" => {
                assert!(
                    matches!(outcome, Err(SignatureError::MalformedHeader { .. })),
                    "{id}: {outcome:?}"
                );
                assert_eq!(github::check_form(header), outcome, "{id}");
                ran += 1;
                continue;
            }
            "wrong-secret" | "lowercase-unicode-escapes-differs" | "tampered" => {
                // Well formed, so the relay would store it; only the secret holder can refuse it.
                assert_eq!(github::check_form(header), Ok(()), "{id}");
                Err(SignatureError::Mismatch)
            }
            other => panic!("unknown GitHub vector {other}: decide its expected outcome"),
        };
        assert_eq!(outcome, expected, "{id}");
        ran += 1;
    }

    assert_eq!(ran, 12, "every GitHub vector ran");
}

// ---------------------------------------------------------------------------------------------
// Standard Webhooks

#[test]
fn standard_webhooks_sign_vectors() {
    let file = load("standard-webhooks-vectors.json");
    let mut ran = 0;
    for vector in file["sign_vectors"].as_array().unwrap() {
        let id = str_field(vector, "id");
        // The unpadded, non-canonical secrets are accepted (this crate's choice, matching the
        // Python reference library, which the expected signatures come from).
        let secret = standard::Secret::parse(str_field(vector, "secret"))
            .unwrap_or_else(|err| panic!("{id}: {err}"));
        let msg_id = str_field(vector, "msg_id");
        let timestamp = vector["timestamp"].as_i64().unwrap();
        let payload = str_field(vector, "payload").as_bytes();
        let expected = str_field(vector, "expected_signature");
        assert_eq!(
            standard::sign(&secret, msg_id, timestamp, payload),
            expected,
            "{id}"
        );

        let now = at(u64::try_from(timestamp).unwrap());
        let headers = standard::signed_headers(&secret, msg_id, now, payload);
        assert_eq!(headers.signature, expected, "{id}");
        assert_eq!(headers.timestamp, timestamp.to_string(), "{id}");
        assert_eq!(
            standard::verify(&secret, &headers.to_pairs(), payload, now),
            Ok(()),
            "{id}"
        );
        ran += 1;
    }
    assert_eq!(ran, 5, "every Standard Webhooks signing vector ran");
}

/// The file's own labels for outcomes.
fn label(outcome: &Result<(), SignatureError>) -> String {
    match outcome {
        Ok(()) => "ok".to_string(),
        Err(SignatureError::TimestampTooOld { .. }) => "error:timestamp_too_old".to_string(),
        Err(SignatureError::TimestampTooNew { .. }) => "error:timestamp_too_new".to_string(),
        Err(SignatureError::InvalidTimestamp) => "error:invalid_timestamp".to_string(),
        Err(SignatureError::MissingHeader { name }) => format!("error:missing_header:{name}"),
        // The file does not tell a malformed list from a well-formed list that does not match.
        Err(SignatureError::Mismatch)
        | Err(SignatureError::MalformedHeader {
            name: standard::SIGNATURE_HEADER,
            ..
        }) => "error:invalid_signature".to_string(),
        Err(SignatureError::Secret(SecretError::Empty)) => "error:empty_secret".to_string(),
        Err(other) => format!("unexpected {other:?}"),
    }
}

#[test]
fn standard_webhooks_verify_vectors() {
    let file = load("standard-webhooks-vectors.json");
    let mut ran = 0;
    let mut positives = 0;
    for vector in file["verify_vectors"].as_array().unwrap() {
        let id = str_field(vector, "id");
        let headers: Vec<(String, String)> = vector["headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(name, value)| (name.clone(), value.as_str().unwrap().to_string()))
            .collect();
        let payload = str_field(vector, "payload").as_bytes();
        let now = at(vector["now"].as_u64().unwrap());
        let expected = str_field(vector, "expected");

        let outcome = standard::Secret::parse(str_field(vector, "secret"))
            .map_err(SignatureError::from)
            .and_then(|secret| standard::verify(&secret, &headers, payload, now));
        assert_eq!(label(&outcome), expected, "{id}: {outcome:?}");

        // The relay's check without the secret agrees: it passes everything that verifies or
        // merely mismatches, and reports the same error for everything else.
        if !matches!(outcome, Err(SignatureError::Secret(_))) {
            let form = standard::check_form(&headers, now);
            match &outcome {
                Ok(()) | Err(SignatureError::Mismatch) => assert_eq!(form, Ok(()), "{id}"),
                Err(err) => assert_eq!(form.as_ref(), Err(err), "{id}"),
            }
        }
        // And the same outcome through the scheme entry point used by the engine.
        assert_eq!(
            label(&hookgate_auth::Scheme::Standard.verify(
                str_field(vector, "secret"),
                &headers,
                payload,
                now
            )),
            expected,
            "{id} via Scheme"
        );
        positives += usize::from(expected == "ok");
        ran += 1;
    }
    assert_eq!(ran, 29, "every Standard Webhooks verification vector ran");
    assert_eq!(positives, 7, "positive verification vectors");
}

// ---------------------------------------------------------------------------------------------
// JWT

/// A fixed clock for the derived tokens (all expire in 2100 unless the case says otherwise).
const NOW: u64 = 1_700_000_000;

fn derived_tokens(file: &Value) -> SlotTokens {
    let derived = &file["derived"];
    let issuer = derived["base_claims"]["iss"].as_str().unwrap();
    SlotTokens::new(str_field(derived, "key_utf8").as_bytes())
        .unwrap()
        .with_issuer(issuer)
}

/// An HS-signed token with any header, as an attacker would craft it.
fn craft(header: &Value, claims: &Value, key: &[u8]) -> String {
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
    mac.update(signing_input.as_bytes());
    format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

fn wrong_alg(found: &str) -> Result<(), TokenError> {
    Err(TokenError::WrongAlgorithm {
        found: found.to_string(),
    })
}

#[test]
fn jwt_derived_vectors() {
    let file = load("jwt-vectors.json");
    let tokens = derived_tokens(&file);
    let base = &file["derived"]["base_claims"];
    let audience = base["aud"].as_str().unwrap();
    let slot = base["sub"].as_str().unwrap();
    let mut ran = 0;

    for case in file["derived"]["cases"].as_array().unwrap() {
        let id = str_field(case, "id");
        let token = str_field(case, "token");
        let verify = |audience: &str| {
            tokens.verify(token, slot, audience, at(NOW)).map(|claims| {
                assert_eq!(claims.sub, slot, "{id}");
            })
        };
        let (outcome, expected) = match id {
            "valid" | "aud-array-containing-ours" => (verify(audience), Ok(())),
            "alg-none-lower" | "alg-none-with-valid-hs256-sig-reused" => {
                (verify(audience), wrong_alg("none"))
            }
            "alg-None-mixed-case" => (verify(audience), wrong_alg("None")),
            "alg-NONE-upper" => (verify(audience), wrong_alg("NONE")),
            "alg-HS512-not-allowed" => (verify(audience), wrong_alg("HS512")),
            "signature-stripped" | "signature-tampered" | "payload-tampered-sub" | "wrong-key" => {
                (verify(audience), Err(TokenError::BadSignature))
            }
            "aud-mismatch" => (verify(audience), Err(TokenError::WrongAudience)),
            // This API always names the audience, so "no audience configured" cannot happen;
            // the nearest case is a verifier for another relay, which must refuse the token.
            "aud-present-but-validator-has-none" => {
                (verify("another-relay"), Err(TokenError::WrongAudience))
            }
            "iss-mismatch" => (verify(audience), Err(TokenError::WrongIssuer)),
            // The file's pitfall: jsonwebtoken accepts a missing `iss`; here it is required.
            "iss-missing-but-set-in-validation" => (
                verify(audience),
                Err(TokenError::MissingClaim { name: "iss" }),
            ),
            "exp-missing" => (
                verify(audience),
                Err(TokenError::MissingClaim { name: "exp" }),
            ),
            "exp-as-string" => (
                verify(audience),
                Err(TokenError::InvalidClaim { name: "exp" }),
            ),
            "exp-long-past(RFC7515 style)" => (verify(audience), Err(TokenError::Expired)),
            "padded-base64url" => (
                verify(audience),
                Err(TokenError::Malformed("header is not unpadded base64url")),
            ),
            // One key, no key selection: any key-choosing header is refused, even when the
            // signature is made with the configured key.
            "kid-unknown" | "kid-path-traversal" => (
                verify(audience),
                Err(TokenError::UnexpectedHeader { name: "kid" }),
            ),
            "embedded-jwk-header" => (
                verify(audience),
                Err(TokenError::UnexpectedHeader { name: "jwk" }),
            ),
            other => panic!("unknown JWT vector {other}: decide its expected outcome"),
        };
        assert_eq!(outcome, expected, "{id}");
        ran += 1;
    }
    assert_eq!(ran, 22, "every derived JWT vector ran");
}

#[test]
fn jwt_time_relative_recipes() {
    let file = load("jwt-vectors.json");
    let key = file["derived"]["key_utf8"].as_str().unwrap().as_bytes();
    let base = &file["derived"]["base_claims"];
    let (issuer, audience, slot) = (
        base["iss"].as_str().unwrap(),
        base["aud"].as_str().unwrap(),
        base["sub"].as_str().unwrap(),
    );
    let relative = |value: &Value| -> u64 {
        let text = value.as_str().unwrap();
        let offset: i64 = text.strip_prefix("now").unwrap().parse().unwrap();
        NOW.checked_add_signed(offset).unwrap()
    };
    let mut ran = 0;

    for recipe in file["time_relative_recipes"].as_array().unwrap() {
        let id = str_field(recipe, "id");
        let mut claims = base.clone();
        for (name, value) in recipe["claims"].as_object().unwrap() {
            claims[name] = Value::from(relative(value));
        }
        let token = craft(
            &serde_json::json!({"alg": "HS256", "typ": "JWT"}),
            &claims,
            key,
        );
        let leeway = recipe["leeway"].as_u64().unwrap();
        let tokens = SlotTokens::new(key)
            .unwrap()
            .with_issuer(issuer)
            .with_leeway(Duration::from_secs(leeway));
        let outcome = tokens.verify(&token, slot, audience, at(NOW)).map(|_| ());
        let expected = match id {
            "exp-now-minus-30" | "nbf-within-leeway" => Ok(()),
            "exp-now-minus-61" | "exp-now-minus-1-leeway0" => Err(TokenError::Expired),
            // `nbf` is always checked here, unlike jsonwebtoken's default (the file's pitfall).
            "nbf-future-validate_nbf-false" | "nbf-future-validate_nbf-true" => {
                Err(TokenError::NotYetValid)
            }
            // jsonwebtoken's `reject_tokens_expiring_in_less_than` has no counterpart: a slot
            // token is good until the slot's deadline, however close it is.
            "reject_tokens_expiring_in_less_than" => Ok(()),
            other => panic!("unknown JWT recipe {other}: decide its expected outcome"),
        };
        assert_eq!(outcome, expected, "{id}");
        ran += 1;
    }
    assert_eq!(ran, 7, "every time-relative JWT recipe ran");
}

#[test]
fn jwt_rfc_and_library_vectors() {
    let file = load("jwt-vectors.json");
    let mut ran = 0;

    // RFC 7515 A.1: the signature is good (the refusal comes later, from the missing `aud`),
    // and with any other key it is not.
    let a1 = &file["rfc7515_A1_HS256"];
    let key = URL_SAFE_NO_PAD.decode(str_field(&a1["jwk"], "k")).unwrap();
    let token = str_field(a1, "jws_compact");
    let tokens = SlotTokens::new(&key).unwrap().with_issuer("joe");
    assert_eq!(
        tokens.verify(token, "any", "any", at(1_300_819_000)),
        Err(TokenError::MissingClaim { name: "aud" })
    );
    let mut other_key = key.clone();
    other_key[0] ^= 1;
    assert_eq!(
        SlotTokens::new(&other_key)
            .unwrap()
            .verify(token, "any", "any", at(1_300_819_000)),
        Err(TokenError::BadSignature)
    );
    ran += 1;

    // RFC 7519 6.1: an unsecured JWT.
    let unsecured = str_field(&file["rfc7519_6_1_unsecured"], "token");
    assert_eq!(
        tokens.verify(unsecured, "any", "any", at(1_300_819_000)),
        Err(TokenError::WrongAlgorithm {
            found: "none".to_string()
        })
    );
    ran += 1;

    // RFC 7520 4.4: signed with a `kid`, which this crate never accepts; the refusal is policy,
    // the signature itself is good.
    let rfc7520 = &file["rfc7520_4_4_HS256"];
    let key = URL_SAFE_NO_PAD
        .decode(str_field(&rfc7520["jwk"], "k"))
        .unwrap();
    let token = str_field(rfc7520, "jws_compact");
    assert_eq!(
        SlotTokens::new(&key)
            .unwrap()
            .verify(token, "any", "any", at(NOW)),
        Err(TokenError::UnexpectedHeader { name: "kid" })
    );
    let (signing_input, signature) = token.rsplit_once('.').unwrap();
    assert!(
        jsonwebtoken::crypto::verify(
            signature,
            signing_input.as_bytes(),
            &jsonwebtoken::DecodingKey::from_secret(&key),
            jsonwebtoken::Algorithm::HS256
        )
        .unwrap()
    );
    ran += 1;

    // jsonwebtoken's own tests sign with 6- and 3-byte keys: too short to be a relay key.
    let library = &file["jsonwebtoken_crate_tests"];
    for (name, key) in [
        ("valid_secret_b'secret'", b"secret".to_vec()),
        ("valid_secret_bytes_010203", vec![1, 2, 3]),
    ] {
        assert!(library[name].is_string(), "{name}");
        assert_eq!(
            SlotTokens::new(&key).unwrap_err(),
            TokenKeyError::TooShort { len: key.len() },
            "{name}"
        );
        ran += 1;
    }

    assert_eq!(ran, 5, "every RFC and library JWT vector ran");
}

/// Algorithm confusion beyond the file: a token that claims another algorithm but is
/// HMAC-signed with the relay key (what an attacker does with a public key taken for an HMAC
/// secret) is refused by name, before the key is used.
#[test]
fn jwt_algorithm_confusion_is_refused() {
    let file = load("jwt-vectors.json");
    let tokens = derived_tokens(&file);
    let key = file["derived"]["key_utf8"].as_str().unwrap().as_bytes();
    let claims = file["derived"]["base_claims"].clone();
    let mut algorithms = BTreeMap::new();
    for alg in [
        "RS256", "PS256", "ES256", "EdDSA", "HS384", "HS512", "hs256", "",
    ] {
        let token = craft(&serde_json::json!({"alg": alg, "typ": "JWT"}), &claims, key);
        algorithms.insert(
            alg,
            tokens.verify(&token, "job-123", "relay-callback", at(NOW)),
        );
    }
    for (alg, outcome) in &algorithms {
        assert_eq!(
            outcome,
            &Err(TokenError::WrongAlgorithm {
                found: (*alg).to_string()
            }),
            "{alg}"
        );
    }
    // The same crafted token with the one accepted algorithm passes: the refusals above are
    // about the algorithm alone.
    let token = craft(
        &serde_json::json!({"alg": "HS256", "typ": "JWT"}),
        &claims,
        key,
    );
    assert!(
        tokens
            .verify(&token, "job-123", "relay-callback", at(NOW))
            .is_ok()
    );
    let token = craft(&serde_json::json!({"typ": "JWT"}), &claims, key);
    assert_eq!(
        tokens.verify(&token, "job-123", "relay-callback", at(NOW)),
        Err(TokenError::WrongAlgorithm {
            found: "(missing)".to_string()
        })
    );
}
