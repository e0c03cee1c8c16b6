//! `waitFor: callback`: wait in a relay slot for a verified verdict. The relay is a mailbox, not a
//! judge: HMAC deliveries are verified here again from their raw bytes with the secret only this
//! process holds (a Standard Webhooks one signed before the slot was opened is a replay), a
//! bearer token that was kept is compared with the slot's, and deliveries that fail
//! verification or are not `{"success": bool}` are reported and ignored, never trusted.
//! (Bearer slot tokens are issued by the relay itself, which checks them on intake and keeps no
//! credentials; end-to-end protection against a compromised relay needs `callback.auth: hmac`.)

use std::time::{Duration, SystemTime};

use hookgate_auth::{Scheme, bearer_matches, standard};
use serde_json::Value;

use crate::backoff::Backoff;
use crate::event::Conclusion;
use crate::mailbox::{Mailbox, MailboxError, OpenSlot, ReceivedCallback};
use crate::request::excerpt;

/// The longest single long-poll of the mailbox.
pub const LONG_POLL: Duration = Duration::from_secs(30);

/// How a delivery must prove where it comes from.
#[derive(Clone)]
pub enum CallbackCheck {
    /// `Authorization: Bearer <the slot's token>`.
    Bearer {
        /// The slot's token. Secret.
        token: String,
    },
    /// An HMAC signature of the raw body.
    Hmac {
        /// The scheme.
        scheme: Scheme,
        /// The rendered secret. Secret.
        secret: String,
        /// Standard Webhooks deliveries signed before this instant are replays of older ones
        /// (the slot did not exist yet), whatever time the relay says it stored them.
        signed_after: SystemTime,
    },
}

impl CallbackCheck {
    /// The check of an HMAC slot opened now: deliveries signed more than the Standard Webhooks
    /// tolerance before now (a clock may be that far behind) are refused.
    pub fn hmac(scheme: Scheme, secret: String) -> Self {
        let tolerance = Duration::from_secs(standard::TOLERANCE_SECONDS.unsigned_abs());
        CallbackCheck::Hmac {
            scheme,
            secret,
            signed_after: SystemTime::now()
                .checked_sub(tolerance)
                .unwrap_or(SystemTime::UNIX_EPOCH),
        }
    }
}

impl std::fmt::Debug for CallbackCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallbackCheck::Bearer { .. } => f.write_str("Bearer(***)"),
            CallbackCheck::Hmac { scheme, .. } => write!(f, "Hmac({scheme}, ***)"),
        }
    }
}

/// What one delivery says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryVerdict {
    /// A verified verdict.
    Accepted {
        /// `success`.
        success: bool,
        /// `mdMessage`, or empty.
        message: String,
    },
    /// Not to be trusted or not understood; the reason is safe to show.
    Ignored(String),
}

/// Verifies and reads one delivery.
pub fn judge_delivery(check: &CallbackCheck, delivery: &ReceivedCallback) -> DeliveryVerdict {
    let verified = match check {
        CallbackCheck::Bearer { token } => {
            let authorization = delivery
                .headers
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
                .map(|(_, value)| value.as_str());
            match authorization {
                // The relay checks a bearer slot's token on intake and does not store credentials.
                // It issued that token, so for bearer slots it is trusted either way; HMAC slots
                // are the ones verified end to end, with a secret the relay never sees.
                None => Ok(()),
                Some(_) if bearer_matches(authorization, token) => Ok(()),
                Some(_) => Err("its bearer token is not this slot's".to_owned()),
            }
        }
        CallbackCheck::Hmac {
            scheme,
            secret,
            signed_after,
        } => scheme
            // The relay stored the delivery at `received_at`; the timestamp tolerance counts from
            // then, so a verdict read late (after a reconnect) still verifies.
            .verify(
                secret,
                &delivery.headers,
                &delivery.body,
                delivery.received_at,
            )
            .map_err(|err| format!("its {scheme} signature does not verify: {err}"))
            .and_then(|()| match standard::signed_at(&delivery.headers) {
                // A relay that lies about `received_at` cannot pass off an old delivery.
                Some(signed) if *scheme == Scheme::Standard && signed < *signed_after => Err(
                    "it was signed before this slot was opened (a replay of an older delivery)"
                        .to_owned(),
                ),
                _ => Ok(()),
            }),
    };
    if let Err(reason) = verified {
        return DeliveryVerdict::Ignored(format!(
            "ignored callback #{}: {reason}",
            delivery.sequence
        ));
    }
    let parsed: Result<Value, _> = serde_json::from_slice(&delivery.body);
    let Ok(Value::Object(body)) = parsed else {
        return DeliveryVerdict::Ignored(format!(
            "ignored callback #{}: the body is not a JSON object: {}",
            delivery.sequence,
            excerpt(&String::from_utf8_lossy(&delivery.body), 100)
        ));
    };
    let Some(success) = body.get("success").and_then(Value::as_bool) else {
        return DeliveryVerdict::Ignored(format!(
            "ignored callback #{}: `success` must be true or false",
            delivery.sequence
        ));
    };
    let message = match body.get("mdMessage") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    DeliveryVerdict::Accepted { success, message }
}

/// The verdict of a slot, once one verified delivery arrives.
#[derive(Debug, Clone)]
pub struct CallbackResult {
    /// `success` or `failure` (or `failure` when the relay refuses us for good).
    pub conclusion: Conclusion,
    /// The callback's `mdMessage`, or why there is no verdict.
    pub message: String,
    /// The accepted body, for `steps[...]`.
    pub body: Option<Value>,
}

/// Long-polls `slot` until a verified verdict arrives. The caller bounds the time (the step's
/// deadline). Relay outages are retried with `backoff`; `progress` hears each ignored delivery
/// and each outage.
pub async fn await_verdict(
    mailbox: &dyn Mailbox,
    slot: &OpenSlot,
    check: &CallbackCheck,
    backoff: Backoff,
    progress: &(dyn Fn(String) + Send + Sync),
) -> CallbackResult {
    let mut after = 0u64;
    let mut failures = 0u32;
    loop {
        let remaining = slot
            .deadline
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        let wait = remaining.clamp(Duration::from_secs(1), LONG_POLL);
        match mailbox.wait(slot, after, wait).await {
            Ok(deliveries) => {
                failures = 0;
                for delivery in deliveries {
                    after = after.max(delivery.sequence);
                    match judge_delivery(check, &delivery) {
                        DeliveryVerdict::Accepted { success, message } => {
                            return CallbackResult {
                                conclusion: if success {
                                    Conclusion::Success
                                } else {
                                    Conclusion::Failure
                                },
                                message: if message.is_empty() {
                                    format!("callback said success: {success}")
                                } else {
                                    message
                                },
                                body: serde_json::from_slice(&delivery.body).ok(),
                            };
                        }
                        DeliveryVerdict::Ignored(reason) => progress(reason),
                    }
                }
            }
            Err(MailboxError::Transient(reason)) => {
                let delay = backoff.delay(failures);
                failures = failures.saturating_add(1);
                progress(format!(
                    "relay unavailable ({reason}); trying again in {}",
                    humantime::format_duration(Duration::from_millis(
                        u64::try_from(delay.as_millis()).unwrap_or(u64::MAX)
                    ))
                ));
                tokio::time::sleep(delay).await;
            }
            Err(MailboxError::Permanent(reason)) => {
                return CallbackResult {
                    conclusion: Conclusion::Failure,
                    message: format!("the relay refused to deliver the callback: {reason}"),
                    body: None,
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn delivery(headers: Vec<(&str, String)>, body: &str) -> ReceivedCallback {
        ReceivedCallback {
            sequence: 1,
            received_at: SystemTime::now(),
            headers: headers
                .into_iter()
                .map(|(n, v)| (n.to_owned(), v))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_bearer_callback_with_the_slot_token_is_accepted() {
        let check = CallbackCheck::Bearer {
            token: "slot-token".into(),
        };
        let ok = delivery(
            vec![("authorization", "Bearer slot-token".into())],
            r#"{"success": false, "mdMessage": "tests failed"}"#,
        );
        assert_eq!(
            judge_delivery(&check, &ok),
            DeliveryVerdict::Accepted {
                success: false,
                message: "tests failed".into()
            }
        );
        let wrong = delivery(
            vec![("authorization", "Bearer other".into())],
            r#"{"success": true}"#,
        );
        assert!(
            matches!(judge_delivery(&check, &wrong), DeliveryVerdict::Ignored(r) if r.contains("not this slot's"))
        );
        // Stored by a relay that checked the token and keeps no credentials.
        let relayed = delivery(vec![], r#"{"success": true}"#);
        assert!(matches!(
            judge_delivery(&check, &relayed),
            DeliveryVerdict::Accepted { success: true, .. }
        ));
    }

    #[test]
    fn debug_output_of_a_delivery_leaves_out_its_token() {
        let d = delivery(
            vec![("authorization", "Bearer slot-s3cret".into())],
            r#"{"success": true}"#,
        );
        let debug = format!("{d:?}");
        assert!(debug.contains("authorization"), "{debug}");
        assert!(!debug.contains("slot-s3cret"), "{debug}");
    }

    #[test]
    fn hmac_callbacks_verify_from_the_raw_body() {
        let secret = "it's a secret".to_owned();
        let body = r#"{"success":true,"mdMessage":"ok"}"#;
        let headers = Scheme::Github
            .sign(&secret, "msg_1", SystemTime::now(), body.as_bytes())
            .unwrap();
        let headers: Vec<(&str, String)> = headers.into_iter().collect();
        let check = CallbackCheck::hmac(Scheme::Github, secret);
        assert!(matches!(
            judge_delivery(&check, &delivery(headers.clone(), body)),
            DeliveryVerdict::Accepted { success: true, .. }
        ));
        let tampered = body.replace("true", "false ");
        assert!(matches!(
            judge_delivery(&check, &delivery(headers, &tampered)),
            DeliveryVerdict::Ignored(_)
        ));
    }

    #[test]
    fn a_standard_webhooks_delivery_signed_before_the_slot_opened_is_a_replay() {
        let secret = standard::Secret::generate();
        let body = r#"{"success":true}"#;
        let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
        let headers = Scheme::Standard
            .sign(&secret, "msg_old", an_hour_ago, body.as_bytes())
            .unwrap();
        // The relay claims it stored the old delivery an hour ago, so its timestamp is fresh.
        let mut replayed = delivery(headers.into_iter().collect(), body);
        replayed.received_at = an_hour_ago;
        let check = CallbackCheck::hmac(Scheme::Standard, secret.clone());
        assert!(
            matches!(judge_delivery(&check, &replayed), DeliveryVerdict::Ignored(r) if r.contains("before this slot was opened"))
        );
        let headers = Scheme::Standard
            .sign(&secret, "msg_new", SystemTime::now(), body.as_bytes())
            .unwrap();
        assert!(matches!(
            judge_delivery(&check, &delivery(headers.into_iter().collect(), body)),
            DeliveryVerdict::Accepted { success: true, .. }
        ));
    }

    #[test]
    fn a_body_without_a_boolean_success_is_ignored() {
        let check = CallbackCheck::Bearer { token: "t".into() };
        for body in [r#"{"success": "yes"}"#, "[1]", "not json", "{}"] {
            let d = delivery(vec![("authorization", "Bearer t".into())], body);
            assert!(
                matches!(judge_delivery(&check, &d), DeliveryVerdict::Ignored(_)),
                "{body}"
            );
        }
    }
}
