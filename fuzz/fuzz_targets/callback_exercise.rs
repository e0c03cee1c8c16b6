//! What the `callback` fuzz target does with one input, shared with the seed-corpus test of
//! hookgate-relay (`crates/hookgate-relay/tests/corpus.rs`), so that both run the same checks.
//!
//! An input is a callback as the relay receives it: header lines (`name: value`), an empty line,
//! then the raw body; without an empty line it is all body. Every check the relay and the action
//! make on a callback from outside runs on it: the verdict parse of the body (the one both use), both HMAC schemes'
//! form check (the relay) and full verification (the action), and the slot token of an
//! `Authorization: Bearer` header. None may panic, and they must agree with each other:
//! - a body the relay accepts as a verdict is JSON with a boolean `success` to `serde_json`,
//!   the parser the action reads it with, and a body it refuses as not JSON is not JSON there
//!   (unless it uses a member name serde_json reserves, which the relay refuses outright);
//! - a signature that verifies also passes the relay's form check.

use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use hookgate_auth::{HeaderSource as _, Scheme, SlotTokens, bearer_token};
use hookgate_protocol::{CallbackKind, Verdict, VerdictError};

/// The clock of every check: 2026-01-01T00:00:00Z.
pub const NOW_SECONDS: u64 = 1_767_225_600;
/// The Standard Webhooks secret the seeds are signed with.
pub const STANDARD_SECRET: &str = "whsec_aG9va2dhdGUtZnV6ei1zdGFuZGFyZC1zZWNyZXQ=";
/// The GitHub-style secret the seeds are signed with.
pub const GITHUB_SECRET: &str = "hookgate-fuzz-github-secret";
/// The relay key the seeds' slot tokens are signed with.
pub const RELAY_KEY: &[u8; 32] = b"hookgate-fuzz-relay-key-32-bytes";
/// The slot and the relay the seeds' slot tokens are for.
pub const SLOT: &str = "019ad3c0c0007000800000000000f022";
pub const AUDIENCE: &str = "http://relay.test";

/// The verifier of slot tokens under `RELAY_KEY`, made once rather than for every input.
static TOKENS: LazyLock<SlotTokens> =
    LazyLock::new(|| SlotTokens::new(RELAY_KEY).expect("a 32-byte key"));

/// Which checks an input passed: the corpus test uses it to show that the seeds reach past the
/// first refusal of each check.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Passed {
    pub verdict: bool,
    pub standard: bool,
    pub github: bool,
    pub token: bool,
}

/// Splits an input into its headers and its body.
pub fn split(data: &[u8]) -> (Vec<(String, String)>, &[u8]) {
    let Some(blank) = data.windows(2).position(|pair| pair == b"\n\n") else {
        return (Vec::new(), data);
    };
    let headers = String::from_utf8_lossy(&data[..blank])
        .lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            Some((name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        })
        .collect();
    (headers, &data[blank + 2..])
}

/// Runs every check on one input.
pub fn exercise(data: &[u8]) -> Passed {
    let (headers, body) = split(data);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(NOW_SECONDS);
    let mut passed = Passed::default();

    let full = serde_json::from_slice::<serde_json::Value>(body);
    match (Verdict::check(body), &full) {
        (Ok(kind), Ok(value)) => {
            let final_ = value.get("final");
            match kind {
                CallbackKind::Final { success } => {
                    assert!(
                        final_.is_none_or(|f| f == true),
                        "final with `final`: {final_:?}"
                    );
                    assert_eq!(
                        value["success"].as_bool(),
                        Some(success),
                        "a different `success`"
                    );
                }
                CallbackKind::Progress => assert_eq!(final_, Some(&serde_json::Value::Bool(false))),
            }
            assert!(
                value
                    .get("outputs")
                    .is_none_or(serde_json::Value::is_object)
            );
            passed.verdict = true;
        }
        (Err(VerdictError::NotJson(_)), Err(_)) => {}
        // serde_json reads objects with its reserved member names as something else; the relay
        // refuses them, so nothing such reaches the action.
        (Err(VerdictError::NotJson(why)), Ok(_)) if why.contains("$serde_json::private::") => {}
        (Err(VerdictError::NotAnObject), Ok(value)) => {
            assert!(!value.is_object() || value.get("success").is_none());
        }
        (Err(VerdictError::NotABoolean), Ok(value)) => {
            assert!(
                value
                    .get("success")
                    .is_some_and(|success| !success.is_boolean())
            );
        }
        (Err(VerdictError::FinalNotABoolean), Ok(value)) => {
            assert!(value.get("final").is_some_and(|f| !f.is_boolean()));
        }
        (Err(VerdictError::OutputsNotAnObject), Ok(value)) => {
            assert!(value.get("outputs").is_some_and(|o| !o.is_object()));
        }
        (outcome, full) => panic!(
            "the relay's verdict check ({outcome:?}) and serde_json ({:?}) disagree",
            full.as_ref().err()
        ),
    }

    for (scheme, secret) in [
        (Scheme::Standard, STANDARD_SECRET),
        (Scheme::Github, GITHUB_SECRET),
    ] {
        let form = scheme.check_form(&headers, now);
        if scheme.verify(secret, &headers, body, now).is_ok() {
            assert_eq!(form, Ok(()), "{scheme} verified but its form was refused");
            match scheme {
                Scheme::Standard => passed.standard = true,
                Scheme::Github => passed.github = true,
            }
        }
    }

    if let Some(token) = headers.header("authorization").and_then(bearer_token)
        && let Ok(claims) = TOKENS.verify(token, SLOT, AUDIENCE, now)
    {
        assert_eq!(claims.sub, SLOT);
        passed.token = true;
    }
    passed
}
