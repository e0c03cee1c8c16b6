//! `waitFor: poll`, Spinnaker's "wait for completion": find the status URL (a GET on the
//! webhook's own URL, the `Location` header, or a JSONPath into the answer), then poll it until
//! the status JSONPath gives a value in one of the status lists.
//!
//! The mapping rules are Spinnaker's: without a status path a 2xx answer is success; a number is
//! percent complete and 100 is success; a value in `terminalStatuses` fails, in
//! `canceledStatuses` cancels, in `successStatuses` succeeds (in that order of precedence, ignoring
//! case); any other value keeps polling; a path that finds nothing fails and says so.

use std::time::Duration;

use hookgate_config::model::{PollConfig, StatusUrlResolution};
use serde_json::Value;
use serde_json_path::JsonPath;

use crate::backoff::parse_retry_after;
use crate::event::Conclusion;
use crate::request::{HttpRequest, HttpResponse, HttpSender, SendError, excerpt};

/// Default time between polls during the first minute (Spinnaker's).
pub const EARLY_INTERVAL: Duration = Duration::from_secs(1);
/// Default time between polls after the first minute.
pub const LATE_INTERVAL: Duration = Duration::from_secs(15);
/// How long the early interval applies.
pub const EARLY_PERIOD: Duration = Duration::from_secs(60);
/// Transient status-check failures in a row after which a poll fails, unless
/// `poll.maxTransientErrors` says otherwise.
pub const DEFAULT_MAX_TRANSIENT_ERRORS: u32 = 20;

/// What one status value means.
#[derive(Debug, Clone, PartialEq)]
pub enum StatusVerdict {
    /// The work succeeded.
    Success,
    /// The work failed (a terminal status).
    Terminal,
    /// The work was cancelled.
    Canceled,
    /// Not finished: keep polling. Carries the percent complete when the status is a number.
    Running(Option<u8>),
}

/// Maps a status value found by `statusJsonPath`.
pub fn map_status(value: &Value, config: &PollConfig) -> StatusVerdict {
    if let Value::Number(number) = value {
        let percent = number.as_f64().unwrap_or(0.0);
        if (percent - 100.0).abs() < f64::EPSILON {
            return StatusVerdict::Success;
        }
        // Clamped to 0..=99, so the cast cannot overflow; 100 was handled above.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let shown = percent.clamp(0.0, 99.0) as u8;
        return StatusVerdict::Running(Some(shown));
    }
    let text = value_text(value);
    if config.terminal_statuses.contains(&text) {
        StatusVerdict::Terminal
    } else if config.canceled_statuses.contains(&text) {
        StatusVerdict::Canceled
    } else if config.success_statuses.contains(&text) {
        StatusVerdict::Success
    } else {
        StatusVerdict::Running(None)
    }
}

/// The outputs `poll.outputs` reads from a status answer, and a note for each it cannot read.
pub fn outputs_of(
    config: &PollConfig,
    body: &Value,
) -> (std::collections::BTreeMap<String, String>, Vec<String>) {
    let mut outputs = std::collections::BTreeMap::new();
    let mut notes = Vec::new();
    for (name, path) in &config.outputs {
        match select_one(path, body) {
            Ok(value) => {
                outputs.insert(name.clone(), value_text(&value));
            }
            Err(err) => notes.push(format!("output `{name}` left out: {err}")),
        }
    }
    (outputs, notes)
}

/// A JSON value as text: strings without quotes, anything else as JSON.
pub fn value_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Why a JSONPath gave no single value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path is not valid JSONPath.
    #[error("`{path}` is not a valid JSONPath: {reason}")]
    Invalid {
        /// The path.
        path: String,
        /// The parser's reason.
        reason: String,
    },
    /// The path matched nothing.
    #[error("`{path}` found nothing in the answer")]
    NotFound {
        /// The path.
        path: String,
    },
    /// The path matched several values.
    #[error("`{path}` matched {count} values; it must match exactly one")]
    Several {
        /// The path.
        path: String,
        /// How many.
        count: usize,
    },
}

/// The single value `path` selects in `document` (RFC 9535 JSONPath).
pub fn select_one(path: &str, document: &Value) -> Result<Value, PathError> {
    let parsed = JsonPath::parse(path).map_err(|err| PathError::Invalid {
        path: path.to_owned(),
        reason: err.to_string(),
    })?;
    let nodes = parsed.query(document).all();
    match nodes.as_slice() {
        [] => Err(PathError::NotFound {
            path: path.to_owned(),
        }),
        [one] => Ok((*one).clone()),
        several => Err(PathError::Several {
            path: path.to_owned(),
            count: several.len(),
        }),
    }
}

/// Finds the status URL from the webhook's request and answer.
pub fn status_url(
    config: &PollConfig,
    request: &HttpRequest,
    response: &HttpResponse,
) -> Result<String, String> {
    let found = match config.status_url_resolution {
        StatusUrlResolution::GetMethod => return Ok(request.url.clone()),
        StatusUrlResolution::LocationHeader => response
            .header("location")
            .map(str::to_owned)
            .ok_or_else(|| {
                format!(
                    "statusUrlResolution is locationHeader but the answer (HTTP {}) has no Location header",
                    response.status
                )
            })?,
        StatusUrlResolution::WebhookResponse => {
            let path = config.status_url_json_path.as_deref().ok_or_else(|| {
                "statusUrlResolution is webhookResponse but no statusUrlJsonPath is set".to_owned()
            })?;
            let document = response.json().ok_or_else(|| {
                format!(
                    "statusUrlJsonPath needs a JSON answer, got: {}",
                    response.excerpt()
                )
            })?;
            let value = select_one(path, &document)
                .map_err(|err| format!("statusUrlJsonPath {err}"))?;
            match value {
                Value::String(url) => url,
                other => {
                    return Err(format!(
                        "statusUrlJsonPath `{path}` found {other}, not a URL"
                    ));
                }
            }
        }
    };
    // A relative URL is relative to where the answer came from.
    let base = reqwest::Url::parse(&response.url)
        .or_else(|_| reqwest::Url::parse(&request.url))
        .map_err(|err| format!("cannot resolve the status URL `{found}`: {err}"))?;
    base.join(&found)
        .map(|url| url.to_string())
        .map_err(|err| format!("the status URL `{found}` is not valid: {err}"))
}

/// The end of a poll.
#[derive(Debug, Clone)]
pub struct PollResult {
    /// How the step ends.
    pub conclusion: Conclusion,
    /// Why.
    pub message: String,
    /// The last status answer's body, as JSON when it is JSON.
    pub last_body: Option<Value>,
}

/// Follows a webhook's answer to its end: finds the status URL from the `request` sent and its
/// `response`, then polls it with the request's own headers (its credentials, not its body's).
pub async fn follow(
    sender: &HttpSender,
    webhook: &hookgate_config::model::Webhook,
    request: &HttpRequest,
    response: &HttpResponse,
    progress: &(dyn Fn(String, Option<u8>) + Send + Sync),
) -> PollResult {
    let config = webhook.poll.clone().unwrap_or_default();
    let url = match status_url(&config, request, response) {
        Ok(url) => url,
        Err(message) => {
            return PollResult {
                conclusion: Conclusion::Failure,
                message,
                last_body: None,
            };
        }
    };
    let headers: Vec<(String, String)> = request
        .headers
        .iter()
        .filter(|(name, _)| {
            !["content-type", "content-length", "idempotency-key"]
                .contains(&name.to_ascii_lowercase().as_str())
        })
        .cloned()
        .collect();
    monitor(
        sender,
        &url,
        &headers,
        &config,
        &webhook.retry_status_codes,
        progress,
    )
    .await
}

/// Interval settings (tests and users may shorten them).
#[derive(Debug, Clone, Copy)]
pub struct PollIntervals {
    /// A fixed interval (`poll.interval`), or Spinnaker's default schedule.
    pub fixed: Option<Duration>,
}

impl PollIntervals {
    /// The wait before the next poll, `elapsed` after monitoring began.
    pub fn next(&self, elapsed: Duration) -> Duration {
        match self.fixed {
            Some(fixed) => fixed,
            None if elapsed < EARLY_PERIOD => EARLY_INTERVAL,
            None => LATE_INTERVAL,
        }
    }
}

/// Polls `url` until the status is final. The caller bounds it with the step's deadline.
/// `progress` hears each change of status or progress.
pub async fn monitor(
    sender: &HttpSender,
    url: &str,
    headers: &[(String, String)],
    config: &PollConfig,
    retry_status: &[u16],
    progress: &(dyn Fn(String, Option<u8>) + Send + Sync),
) -> PollResult {
    if let Some(delay) = config.wait_before_monitor {
        tokio::time::sleep(delay.0).await;
    }
    let intervals = PollIntervals {
        fixed: config.interval.map(|d| d.0),
    };
    let started = tokio::time::Instant::now();
    let request = HttpRequest {
        method: reqwest::Method::GET,
        url: url.to_owned(),
        headers: headers.to_vec(),
        body: None,
    };
    let error_limit = config
        .max_transient_errors
        .unwrap_or(DEFAULT_MAX_TRANSIENT_ERRORS);
    // Transient failures in a row (no answer, 5xx, 429, `retryStatusCodes`); a 2xx resets it.
    let mut errors_in_a_row = 0u32;
    let mut last_note = String::new();
    loop {
        // A busy status endpoint's `Retry-After` stretches the wait before the next poll.
        let mut asked_to_wait = None;
        let note = match sender.send_once(&request).await {
            Ok(response) => match judge(&response, config, retry_status) {
                Judgement::Final(result) => return result,
                Judgement::Running { note, percent } => {
                    errors_in_a_row = 0;
                    if note != last_note {
                        progress(note.clone(), percent);
                    }
                    note
                }
                Judgement::Transient(note) => {
                    errors_in_a_row += 1;
                    asked_to_wait = response
                        .header("retry-after")
                        .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
                    note
                }
            },
            Err(SendError::Invalid(reason)) => {
                return PollResult {
                    conclusion: Conclusion::Failure,
                    message: format!("cannot poll the status URL: {reason}"),
                    last_body: None,
                };
            }
            Err(err) => {
                errors_in_a_row += 1;
                format!("status check failed: {err}")
            }
        };
        if errors_in_a_row > error_limit {
            return PollResult {
                conclusion: Conclusion::Failure,
                message: format!(
                    "{note}; {errors_in_a_row} status checks in a row failed (`poll.maxTransientErrors` is {error_limit})"
                ),
                last_body: None,
            };
        }
        if errors_in_a_row > 0 {
            let note = format!(
                "{note}; will retry ({errors_in_a_row} of {error_limit} failures in a row allowed)"
            );
            if note != last_note {
                progress(note.clone(), None);
            }
        }
        last_note = note;
        let interval = intervals.next(started.elapsed());
        tokio::time::sleep(asked_to_wait.map_or(interval, |wait| wait.max(interval))).await;
    }
}

enum Judgement {
    Final(PollResult),
    Running {
        note: String,
        percent: Option<u8>,
    },
    /// A failure that may pass: 5xx, 429, `retryStatusCodes`.
    Transient(String),
}

fn judge(response: &HttpResponse, config: &PollConfig, retry_status: &[u16]) -> Judgement {
    let status = response.status;
    let body = response.json();
    if !response.is_success() {
        // `failFastStatusCodes` is the call's, as in Spinnaker: a status check retries 5xx.
        let transient = status >= 500 || status == 429 || retry_status.contains(&status);
        if transient {
            return Judgement::Transient(format!("status check answered HTTP {status}"));
        }
        return Judgement::Final(PollResult {
            conclusion: Conclusion::Failure,
            message: format!(
                "status check answered HTTP {status}: {}",
                response.excerpt()
            ),
            last_body: body,
        });
    }
    let progress_text = config.progress_json_path.as_deref().and_then(|path| {
        body.as_ref()
            .and_then(|doc| select_one(path, doc).ok())
            .map(|v| excerpt(&value_text(&v), 200))
    });
    let with_progress = |text: String| match &progress_text {
        Some(p) => format!("{text}; {p}"),
        None => text,
    };
    let Some(path) = config.status_json_path.as_deref() else {
        return Judgement::Final(PollResult {
            conclusion: Conclusion::Success,
            message: with_progress(format!("status check answered HTTP {status}")),
            last_body: body,
        });
    };
    let Some(document) = &body else {
        return Judgement::Final(PollResult {
            conclusion: Conclusion::Failure,
            message: format!(
                "the status answer is not JSON, so statusJsonPath `{path}` cannot be read: {}",
                response.excerpt()
            ),
            last_body: None,
        });
    };
    let value = match select_one(path, document) {
        Ok(value) => value,
        Err(err) => {
            return Judgement::Final(PollResult {
                conclusion: Conclusion::Failure,
                message: format!("statusJsonPath {err}: {}", response.excerpt()),
                last_body: body,
            });
        }
    };
    let shown = excerpt(&value_text(&value), 100);
    let finish = |conclusion: Conclusion| {
        Judgement::Final(PollResult {
            conclusion,
            message: with_progress(format!("status `{shown}`")),
            last_body: body.clone(),
        })
    };
    match map_status(&value, config) {
        StatusVerdict::Success => finish(Conclusion::Success),
        StatusVerdict::Terminal => finish(Conclusion::Failure),
        StatusVerdict::Canceled => finish(Conclusion::Cancelled),
        StatusVerdict::Running(Some(percent)) => Judgement::Running {
            note: with_progress(format!("{percent}% complete")),
            percent: Some(percent),
        },
        StatusVerdict::Running(None) => Judgement::Running {
            note: with_progress(format!("status `{shown}`")),
            percent: None,
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use hookgate_config::model::StatusList;
    use serde_json::json;

    use super::*;

    fn config() -> PollConfig {
        PollConfig {
            success_statuses: StatusList(vec!["SUCCEEDED".into(), "done".into()]),
            canceled_statuses: StatusList(vec!["CANCELED".into(), "stopped".into()]),
            terminal_statuses: StatusList(vec!["TERMINAL".into(), "stopped".into(), "done".into()]),
            ..PollConfig::default()
        }
    }

    #[test]
    fn listed_statuses_match_ignoring_case() {
        let c = config();
        assert_eq!(map_status(&json!("succeeded"), &c), StatusVerdict::Success);
        assert_eq!(map_status(&json!("Canceled"), &c), StatusVerdict::Canceled);
        assert_eq!(map_status(&json!("terminal"), &c), StatusVerdict::Terminal);
    }

    #[test]
    fn terminal_wins_over_canceled_and_canceled_over_success() {
        let c = config();
        assert_eq!(map_status(&json!("STOPPED"), &c), StatusVerdict::Terminal);
        assert_eq!(map_status(&json!("done"), &c), StatusVerdict::Terminal);
        let mut c2 = config();
        c2.terminal_statuses = StatusList(Vec::new());
        c2.canceled_statuses = StatusList(vec!["done".into()]);
        assert_eq!(map_status(&json!("done"), &c2), StatusVerdict::Canceled);
    }

    #[test]
    fn numbers_are_percent_and_100_is_success() {
        let c = config();
        assert_eq!(map_status(&json!(100), &c), StatusVerdict::Success);
        assert_eq!(map_status(&json!(100.0), &c), StatusVerdict::Success);
        assert_eq!(map_status(&json!(42), &c), StatusVerdict::Running(Some(42)));
        assert_eq!(
            map_status(&json!(250), &c),
            StatusVerdict::Running(Some(99))
        );
    }

    #[test]
    fn unknown_values_keep_polling() {
        let c = config();
        assert_eq!(
            map_status(&json!("RUNNING"), &c),
            StatusVerdict::Running(None)
        );
        assert_eq!(map_status(&json!(true), &c), StatusVerdict::Running(None));
        assert_eq!(map_status(&Value::Null, &c), StatusVerdict::Running(None));
    }

    #[test]
    fn booleans_match_lists_as_text() {
        let mut c = config();
        c.success_statuses = StatusList(vec!["true".into()]);
        assert_eq!(map_status(&json!(true), &c), StatusVerdict::Success);
    }

    #[test]
    fn a_single_match_is_its_value() {
        let doc = json!({"run": {"state": "RUNNING"}, "jobs": [{"s": 1}, {"s": 2}]});
        assert_eq!(select_one("$.run.state", &doc).unwrap(), json!("RUNNING"));
        assert_eq!(select_one("$.jobs[?@.s == 2].s", &doc).unwrap(), json!(2));
        assert_eq!(
            select_one("$.missing", &doc).unwrap_err(),
            PathError::NotFound {
                path: "$.missing".into()
            }
        );
        assert!(matches!(
            select_one("$.jobs[*].s", &doc).unwrap_err(),
            PathError::Several { count: 2, .. }
        ));
        assert!(matches!(
            select_one("$.[", &doc).unwrap_err(),
            PathError::Invalid { .. }
        ));
    }

    #[test]
    fn the_default_interval_slows_after_a_minute() {
        let default = PollIntervals { fixed: None };
        assert_eq!(default.next(Duration::from_secs(5)), EARLY_INTERVAL);
        assert_eq!(default.next(Duration::from_secs(61)), LATE_INTERVAL);
        let fixed = PollIntervals {
            fixed: Some(Duration::from_millis(100)),
        };
        assert_eq!(
            fixed.next(Duration::from_secs(600)),
            Duration::from_millis(100)
        );
    }

    fn answer(status: u16, headers: &[(&str, &str)], body: &str, url: &str) -> HttpResponse {
        HttpResponse::answered(status, headers, body, url)
    }

    fn request(url: &str) -> HttpRequest {
        HttpRequest {
            method: reqwest::Method::POST,
            url: url.to_owned(),
            headers: Vec::new(),
            body: None,
        }
    }

    #[test]
    fn status_url_from_each_resolution() {
        let mut c = PollConfig::default();
        let req = request("http://h/start?x=1");
        let resp = answer(
            202,
            &[("location", "/jobs/7")],
            r#"{"links":{"status":"http://other/s/7"}}"#,
            "http://h/start?x=1",
        );
        assert_eq!(status_url(&c, &req, &resp).unwrap(), "http://h/start?x=1");
        c.status_url_resolution = StatusUrlResolution::LocationHeader;
        assert_eq!(status_url(&c, &req, &resp).unwrap(), "http://h/jobs/7");
        c.status_url_resolution = StatusUrlResolution::WebhookResponse;
        assert!(
            status_url(&c, &req, &resp)
                .unwrap_err()
                .contains("statusUrlJsonPath")
        );
        c.status_url_json_path = Some("$.links.status".into());
        assert_eq!(status_url(&c, &req, &resp).unwrap(), "http://other/s/7");
        c.status_url_json_path = Some("$.links.nope".into());
        assert!(
            status_url(&c, &req, &resp)
                .unwrap_err()
                .contains("found nothing")
        );
    }

    #[test]
    fn a_missing_location_header_says_so() {
        let c = PollConfig {
            status_url_resolution: StatusUrlResolution::LocationHeader,
            ..PollConfig::default()
        };
        let err = status_url(
            &c,
            &request("http://h/"),
            &answer(200, &[], "", "http://h/"),
        )
        .unwrap_err();
        assert!(err.contains("no Location header"), "{err}");
    }

    #[test]
    fn judging_answers() {
        let mut c = config();
        c.status_json_path = Some("$.state".into());
        c.progress_json_path = Some("$.note".into());
        let running = judge(
            &answer(
                200,
                &[],
                r#"{"state":"RUNNING","note":"step 2"}"#,
                "http://h",
            ),
            &c,
            &[],
        );
        assert!(
            matches!(running, Judgement::Running { ref note, .. } if note == "status `RUNNING`; step 2")
        );
        let done = judge(
            &answer(200, &[], r#"{"state":"SUCCEEDED"}"#, "http://h"),
            &c,
            &[],
        );
        assert!(matches!(
            done,
            Judgement::Final(PollResult {
                conclusion: Conclusion::Success,
                ..
            })
        ));
        let missing = judge(&answer(200, &[], r#"{"other":1}"#, "http://h"), &c, &[]);
        assert!(
            matches!(missing, Judgement::Final(PollResult { conclusion: Conclusion::Failure, ref message, .. }) if message.contains("found nothing"))
        );
        let busy = judge(&answer(503, &[], "", "http://h"), &c, &[]);
        assert!(matches!(busy, Judgement::Transient(_)));
        let refused = judge(&answer(403, &[], "", "http://h"), &c, &[]);
        assert!(matches!(
            refused,
            Judgement::Final(PollResult {
                conclusion: Conclusion::Failure,
                ..
            })
        ));
        let listed = judge(&answer(409, &[], "", "http://h"), &c, &[409]);
        assert!(matches!(listed, Judgement::Transient(_)));
        let no_path = judge(
            &answer(204, &[], "", "http://h"),
            &PollConfig::default(),
            &[],
        );
        assert!(matches!(
            no_path,
            Judgement::Final(PollResult {
                conclusion: Conclusion::Success,
                ..
            })
        ));
    }
}
