//! `waitFor: callback`: wait in a relay slot for a verified verdict. The relay is a mailbox, not a
//! judge: HMAC deliveries are verified here again from their raw bytes with the secret only this
//! process holds (a Standard Webhooks one signed before the slot was opened is a replay), and
//! deliveries that fail verification or are not `{"success": bool}` are reported and ignored,
//! never trusted. Bearer slots are the exception: the relay issued the slot's token, checks it on
//! intake and never stores credentials, so a bearer delivery is as good as the relay that holds
//! it; end-to-end protection against a compromised relay needs `callback.auth: hmac`.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use hookgate_auth::{Scheme, standard};
use hookgate_protocol::{CallbackKind, Delivery, SlotCreated, SlotId, Verdict, VerdictError};
use serde_json::Value;

use crate::backoff::Backoff;
use crate::event::Conclusion;
use crate::mailbox::{Mailbox, MailboxError};
use crate::request::excerpt;

/// The longest single long-poll of the mailbox.
pub const LONG_POLL: Duration = Duration::from_secs(30);
/// An answer with nothing new sooner than this is an early one: a relay answers an empty long
/// poll only when the wait ends, at least a second (`hookgate relay` refuses a `--max-wait`
/// under a second). A relay that answers sooner is lying, or set up by hand to do so; either
/// way it is asked again only after a pause.
const EARLY_ANSWER: Duration = Duration::from_secs(1);
/// How often an early answer with nothing new is said in the log, at most.
const IDLE_NOTE_EVERY: Duration = Duration::from_secs(60);

/// How a delivery must prove where it comes from.
#[derive(Clone)]
pub enum CallbackCheck {
    /// A bearer slot: the relay checked the slot's token on intake (and kept no credential to
    /// check again), so what it delivers is trusted as far as the relay is.
    Relay,
    /// An HMAC signature of the raw body.
    Hmac {
        /// The scheme.
        scheme: Scheme,
        /// The rendered secret. Secret.
        secret: String,
        /// Standard Webhooks deliveries signed before this instant are replays of older ones
        /// (the slot did not exist yet), whatever time the relay says it stored them.
        signed_after: SystemTime,
        /// The slot the signed body must name (`"slot": "<id>"`), so that a verdict signed for
        /// another slot under the same secret never counts here.
        slot: SlotId,
        /// Whether a signed body that names no slot counts (`callback.allowUnbound`).
        allow_unbound: bool,
    },
}

impl CallbackCheck {
    /// The check of an HMAC slot opened now: deliveries signed more than the Standard Webhooks
    /// tolerance before now (a clock may be that far behind) are refused, and so are those whose
    /// body names another slot than `slot` (or none, unless `allow_unbound`).
    pub fn hmac(scheme: Scheme, secret: String, slot: SlotId, allow_unbound: bool) -> Self {
        let tolerance = Duration::from_secs(standard::TOLERANCE_SECONDS.unsigned_abs());
        CallbackCheck::Hmac {
            scheme,
            secret,
            signed_after: SystemTime::now()
                .checked_sub(tolerance)
                .unwrap_or(SystemTime::UNIX_EPOCH),
            slot,
            allow_unbound,
        }
    }
}

impl std::fmt::Debug for CallbackCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallbackCheck::Relay => f.write_str("Relay"),
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
        /// `outputs`.
        outputs: BTreeMap<String, String>,
    },
    /// Verified progress (`"final": false`): the wait goes on.
    Progress {
        /// `mdMessage`, or empty.
        message: String,
        /// `outputs`.
        outputs: BTreeMap<String, String>,
    },
    /// Not to be trusted or not understood; the reason is safe to show.
    Ignored(String),
}

/// Verifies and reads one delivery.
pub fn judge_delivery(check: &CallbackCheck, delivery: &Delivery) -> DeliveryVerdict {
    let verified = match check {
        CallbackCheck::Relay => Ok(()),
        CallbackCheck::Hmac {
            scheme,
            secret,
            signed_after,
            ..
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
    match Verdict::parse(&delivery.body) {
        Ok(verdict) => {
            if let CallbackCheck::Hmac {
                slot,
                allow_unbound,
                ..
            } = check
            {
                let bound = match verdict.slot.as_deref() {
                    Some(named) if named == slot.as_str() => Ok(()),
                    Some(named) => Err(format!(
                        "it was signed for slot {}, not this step's slot (a verdict of another run)",
                        excerpt(named, 40)
                    )),
                    None if *allow_unbound => Ok(()),
                    None => Err(
                        "its signed body names no `slot`; `hookgate callback` adds it, other signers put `\"slot\": \"{{ callback.slot }}\"` in the body (or set `callback.allowUnbound: true`)".to_owned(),
                    ),
                };
                if let Err(reason) = bound {
                    return DeliveryVerdict::Ignored(format!(
                        "ignored callback #{}: {reason}",
                        delivery.sequence
                    ));
                }
            }
            let message = verdict.message.unwrap_or_default();
            match verdict.kind {
                CallbackKind::Final { success } => DeliveryVerdict::Accepted {
                    success,
                    message,
                    outputs: verdict.outputs,
                },
                CallbackKind::Progress => DeliveryVerdict::Progress {
                    message,
                    outputs: verdict.outputs,
                },
            }
        }
        Err(
            err @ (VerdictError::NotABoolean
            | VerdictError::FinalNotABoolean
            | VerdictError::OutputsNotAnObject),
        ) => DeliveryVerdict::Ignored(format!("ignored callback #{}: {err}", delivery.sequence)),
        Err(VerdictError::NotJson(_) | VerdictError::NotAnObject) => {
            DeliveryVerdict::Ignored(format!(
                "ignored callback #{}: the body is not a JSON object with a boolean `success`: {}",
                delivery.sequence,
                excerpt(&String::from_utf8_lossy(&delivery.body), 100)
            ))
        }
    }
}

/// The longest progress message shown, in bytes; the rest is cut with a note.
pub const MAX_PROGRESS_MESSAGE: usize = 4_096;

/// A progress callback as one line of the log and the check run: its message, or its number
/// when it has none. (The runner masks it, then cuts it with [`cut_progress`].)
fn progress_line(sequence: u64, message: &str) -> String {
    let message = message.trim();
    if message.is_empty() {
        return format!("progress (callback #{sequence})");
    }
    message.to_owned()
}

/// `message` cut to [`MAX_PROGRESS_MESSAGE`] bytes, saying so.
pub fn cut_progress(message: &str) -> String {
    if message.len() <= MAX_PROGRESS_MESSAGE {
        return message.to_owned();
    }
    let mut end = MAX_PROGRESS_MESSAGE;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{} … (cut: {} more bytes)",
        &message[..end],
        message.len() - end
    )
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
/// deadline). Relay outages are retried with `backoff`; `progress` hears each verified progress
/// callback's message, each ignored delivery and each outage; `outputs` hears the `outputs` of
/// every verified callback, progress included, as it arrives.
pub async fn await_verdict(
    mailbox: &dyn Mailbox,
    slot: &SlotCreated,
    check: &CallbackCheck,
    backoff: Backoff,
    progress: &(dyn Fn(String) + Send + Sync),
    outputs: &(dyn Fn(BTreeMap<String, String>) + Send + Sync),
) -> CallbackResult {
    let mut after = 0u64;
    let mut failures = 0u32;
    // Early answers in a row that brought nothing new, and when that was last said: a relay that
    // answers at once with nothing new (or only what was seen) is asked again after a pause that
    // grows, and said so at most once a minute, so a lying relay costs neither CPU nor log.
    let mut idle = 0u32;
    let mut idle_said: Option<tokio::time::Instant> = None;
    loop {
        let remaining = slot
            .deadline
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        let wait = remaining.clamp(Duration::from_secs(1), LONG_POLL);
        let asked = tokio::time::Instant::now();
        match mailbox.wait(slot, after, wait).await {
            Ok(deliveries) => {
                failures = 0;
                // A delivery already seen is never acted on again, whatever the relay says.
                let fresh: Vec<Delivery> = deliveries
                    .into_iter()
                    .filter(|delivery| delivery.sequence > after)
                    .collect();
                if fresh.is_empty() && asked.elapsed() < EARLY_ANSWER.min(wait) {
                    let pause = backoff.delay(idle);
                    idle = idle.saturating_add(1);
                    if idle_said.is_none_or(|said| said.elapsed() >= IDLE_NOTE_EVERY) {
                        idle_said = Some(tokio::time::Instant::now());
                        progress(format!(
                            "the relay answered before the wait was over with nothing new; asking again after a pause of up to {}",
                            humantime::format_duration(backoff.max)
                        ));
                    }
                    tokio::time::sleep(pause).await;
                    continue;
                }
                idle = 0;
                for delivery in fresh {
                    after = after.max(delivery.sequence);
                    match judge_delivery(check, &delivery) {
                        DeliveryVerdict::Accepted {
                            success,
                            message,
                            outputs: given,
                        } => {
                            if !given.is_empty() {
                                outputs(given);
                            }
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
                        DeliveryVerdict::Progress {
                            message,
                            outputs: given,
                        } => {
                            if !given.is_empty() {
                                outputs(given);
                            }
                            progress(progress_line(delivery.sequence, &message));
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

    fn delivery(headers: Vec<(&str, String)>, body: &str) -> Delivery {
        Delivery {
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
    fn a_bearer_callback_is_as_good_as_the_relay_that_checked_its_token() {
        let relayed = delivery(vec![], r#"{"success": false, "mdMessage": "tests failed"}"#);
        assert_eq!(
            judge_delivery(&CallbackCheck::Relay, &relayed),
            DeliveryVerdict::Accepted {
                success: false,
                message: "tests failed".into(),
                outputs: BTreeMap::new(),
            }
        );
        let progress = delivery(
            vec![],
            r#"{"final": false, "mdMessage": "2 of 5", "outputs": {"run": "https://ci/7"}}"#,
        );
        assert_eq!(
            judge_delivery(&CallbackCheck::Relay, &progress),
            DeliveryVerdict::Progress {
                message: "2 of 5".into(),
                outputs: BTreeMap::from([("run".to_owned(), "https://ci/7".to_owned())]),
            }
        );
    }

    #[test]
    fn long_progress_messages_are_cut_saying_so() {
        assert_eq!(progress_line(3, "  "), "progress (callback #3)");
        assert_eq!(progress_line(3, "2 of 5 suites\n"), "2 of 5 suites");
        let long = "é".repeat(MAX_PROGRESS_MESSAGE);
        let line = cut_progress(&long);
        assert!(line.len() < MAX_PROGRESS_MESSAGE + 40, "{}", line.len());
        assert!(
            line.ends_with(" … (cut: 4096 more bytes)"),
            "{}",
            &line[line.len() - 40..]
        );
    }

    #[test]
    fn debug_output_of_a_delivery_leaves_out_header_values() {
        let d = delivery(
            vec![("x-hub-signature-256", "sha256=s3cret".into())],
            r#"{"success": true}"#,
        );
        let debug = format!("{d:?}");
        assert!(debug.contains("x-hub-signature-256"), "{debug}");
        assert!(!debug.contains("s3cret"), "{debug}");
    }

    const SLOT: &str = "019ad3c0c0007000800000000000f022";
    const OTHER_SLOT: &str = "019ad3c0c0007000800000000000beef";

    fn signed(scheme: Scheme, secret: &str, body: &str) -> Delivery {
        let headers = scheme
            .sign(secret, "msg_1", SystemTime::now(), body.as_bytes())
            .unwrap();
        delivery(headers.into_iter().collect(), body)
    }

    #[test]
    fn a_signed_verdict_counts_for_the_slot_it_names_only() {
        for scheme in [Scheme::Github, Scheme::Standard] {
            let secret = match scheme {
                Scheme::Github => "shared by two runs".to_owned(),
                Scheme::Standard => standard::Secret::generate().as_str().to_owned(),
            };
            let bound = CallbackCheck::hmac(scheme, secret.clone(), SLOT.parse().unwrap(), false);
            let ours = format!(r#"{{"success":false,"slot":"{SLOT}"}}"#);
            assert!(
                matches!(
                    judge_delivery(&bound, &signed(scheme, &secret, &ours)),
                    DeliveryVerdict::Accepted { success: false, .. }
                ),
                "{scheme}"
            );
            // A genuine success signed for another run's slot, served into this one.
            let theirs = format!(r#"{{"success":true,"slot":"{OTHER_SLOT}"}}"#);
            assert!(
                matches!(judge_delivery(&bound, &signed(scheme, &secret, &theirs)), DeliveryVerdict::Ignored(r) if r.contains("signed for slot 019ad3c0c0007000800000000000beef")),
                "{scheme}"
            );
            // A genuine success that names no slot counts only where the webhook allows it.
            let unbound = r#"{"success":true}"#;
            assert!(
                matches!(judge_delivery(&bound, &signed(scheme, &secret, unbound)), DeliveryVerdict::Ignored(r) if r.contains("names no `slot`")),
                "{scheme}"
            );
            let lenient = CallbackCheck::hmac(scheme, secret.clone(), SLOT.parse().unwrap(), true);
            assert!(matches!(
                judge_delivery(&lenient, &signed(scheme, &secret, unbound)),
                DeliveryVerdict::Accepted { success: true, .. }
            ));
            // Allowing unbound verdicts never lets another slot's through.
            assert!(matches!(
                judge_delivery(&lenient, &signed(scheme, &secret, &theirs)),
                DeliveryVerdict::Ignored(_)
            ));
        }
    }

    #[test]
    fn hmac_callbacks_verify_from_the_raw_body() {
        let secret = "it's a secret".to_owned();
        let body = format!(r#"{{"success":true,"mdMessage":"ok","slot":"{SLOT}"}}"#);
        let body = body.as_str();
        let headers = Scheme::Github
            .sign(&secret, "msg_1", SystemTime::now(), body.as_bytes())
            .unwrap();
        let headers: Vec<(&str, String)> = headers.into_iter().collect();
        let check = CallbackCheck::hmac(Scheme::Github, secret, SLOT.parse().unwrap(), false);
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
        let body = format!(r#"{{"success":true,"slot":"{SLOT}"}}"#);
        let body = body.as_str();
        let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
        let headers = Scheme::Standard
            .sign(&secret, "msg_old", an_hour_ago, body.as_bytes())
            .unwrap();
        // The relay claims it stored the old delivery an hour ago, so its timestamp is fresh.
        let mut replayed = delivery(headers.into_iter().collect(), body);
        replayed.received_at = an_hour_ago;
        let check = CallbackCheck::hmac(
            Scheme::Standard,
            secret.as_str().to_owned(),
            SLOT.parse().unwrap(),
            false,
        );
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
        let check = CallbackCheck::Relay;
        for body in [r#"{"success": "yes"}"#, "[1]", "not json", "{}"] {
            let d = delivery(vec![], body);
            assert!(
                matches!(judge_delivery(&check, &d), DeliveryVerdict::Ignored(_)),
                "{body}"
            );
        }
    }
}
