//! `POST /github/webhook`: GitHub's deliveries to the App. The signature
//! (`X-Hub-Signature-256`, the App's webhook secret) is checked on the raw body before anything
//! is parsed or stored: a missing or wrong one is 401 and nothing else happens. `ping` is
//! answered; `deployment_protection_rule` (`requested`) becomes a gate, once per delivery id
//! and per repository, environment, run and deployment; every other event is acknowledged and
//! ignored.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::AppState;
use crate::gates::NewGate;
use crate::metrics::WebhookOutcome;

/// The largest delivery taken (GitHub caps payloads at 25 MB; a protection rule event with
/// its pull requests is a few dozen KiB).
pub const MAX_DELIVERY: usize = 1024 * 1024;

type Answer = (StatusCode, Json<Value>);

fn answer(status: StatusCode, message: &str) -> Answer {
    (status, Json(json!({ "message": message })))
}

/// Signature refusals logged in the current minute, and when that minute began: at most
/// [`REFUSALS_LOGGED_PER_MINUTE`] lines a minute, then one saying how many went unlogged.
static REFUSALS: std::sync::Mutex<Option<(std::time::Instant, u64)>> = std::sync::Mutex::new(None);

/// The most signature refusals logged in a minute.
const REFUSALS_LOGGED_PER_MINUTE: u64 = 20;

/// Whether to log this refusal, and how many went unlogged in the minute before it.
fn log_refusal() -> (bool, u64) {
    let mut window = REFUSALS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let now = std::time::Instant::now();
    match &mut *window {
        Some((start, count)) if now.duration_since(*start) < Duration::from_secs(60) => {
            *count += 1;
            (*count <= REFUSALS_LOGGED_PER_MINUTE, 0)
        }
        slot => {
            let unlogged = slot
                .map(|(_, count)| count.saturating_sub(REFUSALS_LOGGED_PER_MINUTE))
                .unwrap_or(0);
            *slot = Some((now, 1));
            (true, unlogged)
        }
    }
}

/// How long storing a gate is tried, within GitHub's 10 s wait for the answer.
const STORE_PATIENCE: Duration = Duration::from_secs(5);

/// How long a delivery's body may take to arrive: a body sent a byte at a time does not hold
/// its connection for as long as the sender likes.
pub const BODY_DEADLINE: Duration = Duration::from_secs(10);

/// Takes one delivery.
pub async fn take(State(app): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Answer {
    let body =
        match tokio::time::timeout(BODY_DEADLINE, axum::body::to_bytes(body, MAX_DELIVERY)).await {
            Ok(Ok(body)) => body,
            Ok(Err(_)) => {
                app.metrics.webhook(WebhookOutcome::BadRequest);
                return answer(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("the delivery is larger than {MAX_DELIVERY} bytes"),
                );
            }
            Err(_) => {
                app.metrics.webhook(WebhookOutcome::BadRequest);
                return answer(
                    StatusCode::REQUEST_TIMEOUT,
                    "the delivery's body did not arrive within 10 seconds",
                );
            }
        };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    // The delivery id is the sender's text: checked before it is logged or stored.
    let delivery = header("x-github-delivery")
        .filter(|d| !d.is_empty() && d.len() <= 100 && d.bytes().all(|b| b.is_ascii_graphic()));
    if let Err(err) =
        hookgate_auth::github::verify(&app.webhook_secret, &body, header("x-hub-signature-256"))
    {
        app.metrics.webhook(WebhookOutcome::Unauthorized);
        // At most 20 lines a minute: a flood of unsigned requests costs a bounded log (the
        // metric counts them all).
        let (log, unlogged) = log_refusal();
        if log {
            tracing::warn!(delivery = delivery.unwrap_or("-"), error = %err, unlogged_before = unlogged, "GitHub webhook refused: bad signature");
        }
        return answer(
            StatusCode::UNAUTHORIZED,
            "the X-Hub-Signature-256 signature does not match the webhook secret",
        );
    }
    let event = header("x-github-event").unwrap_or_default();
    let Some(delivery) = delivery else {
        app.metrics.webhook(WebhookOutcome::BadRequest);
        return answer(StatusCode::BAD_REQUEST, "no valid X-GitHub-Delivery header");
    };
    match event {
        "ping" => {
            app.metrics.webhook(WebhookOutcome::Ignored);
            tracing::info!(delivery, "GitHub ping");
            return answer(StatusCode::OK, "pong");
        }
        "deployment_protection_rule" => {}
        other => {
            app.metrics.webhook(WebhookOutcome::Ignored);
            tracing::debug!(delivery, event = other, "GitHub event ignored");
            return answer(StatusCode::ACCEPTED, "event ignored");
        }
    }
    let gate = match parse_event(delivery, &body, SystemTime::now(), app.settings.timeout) {
        Ok(Some(gate)) => gate,
        Ok(None) => {
            app.metrics.webhook(WebhookOutcome::Ignored);
            return answer(StatusCode::ACCEPTED, "action ignored");
        }
        Err(why) => {
            app.metrics.webhook(WebhookOutcome::BadRequest);
            tracing::warn!(delivery, reason = %why, "deployment_protection_rule event refused");
            return answer(StatusCode::BAD_REQUEST, &why);
        }
    };
    // GitHub waits 10 s for an answer and does not redeliver by itself: a store that is away
    // for a moment is tried again within that.
    let give_up = tokio::time::Instant::now() + STORE_PATIENCE;
    let mut stored = app.store.insert(&gate).await;
    while stored.is_err() && tokio::time::Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(250)).await;
        stored = app.store.insert(&gate).await;
    }
    match stored {
        Ok(true) => {
            app.metrics.webhook(WebhookOutcome::Gate);
            tracing::info!(
                delivery,
                repository = %gate.repository,
                environment = %gate.environment,
                run_id = gate.run_id,
                state = "open",
                "gate opened"
            );
            app.wake.notify_one();
            if let Ok(open) = app.store.open_count().await {
                app.metrics.set_open(open);
            }
            answer(StatusCode::ACCEPTED, "gate opened")
        }
        Ok(false) => {
            app.metrics.webhook(WebhookOutcome::Redelivery);
            tracing::info!(delivery, "redelivery of a gate already taken");
            answer(StatusCode::OK, "gate already taken")
        }
        Err(err) => {
            app.metrics.webhook(WebhookOutcome::Unavailable);
            tracing::error!(delivery, error = %err, "cannot store a gate; GitHub must redeliver it");
            answer(
                StatusCode::SERVICE_UNAVAILABLE,
                "the gate could not be stored; redeliver it",
            )
        }
    }
}

/// The gate a `deployment_protection_rule` delivery asks for, received at `received_at` and
/// open for `timeout`; `None` for an action other than `requested`, and why for a body that is
/// not such an event. The body's signature must have been checked first.
pub fn parse_event(
    delivery: &str,
    body: &[u8],
    received_at: SystemTime,
    timeout: Duration,
) -> Result<Option<NewGate>, String> {
    let payload: Value =
        serde_json::from_slice(body).map_err(|err| format!("the body is not JSON: {err}"))?;
    if payload.get("action").and_then(Value::as_str) != Some("requested") {
        return Ok(None);
    }
    let text = |pointer: &str| {
        payload
            .pointer(pointer)
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                format!(
                    "the event has no `{}`",
                    pointer.trim_start_matches('/').replace('/', ".")
                )
            })
    };
    let repository = text("/repository/full_name")?;
    let environment = text("/environment")?;
    let callback = text("/deployment_callback_url")?;
    // The installation is found from the repository when a token is needed; an event without
    // one is not GitHub's.
    payload
        .pointer("/installation/id")
        .and_then(Value::as_i64)
        .ok_or("the event has no `installation.id`")?;
    let run_id = run_id_of(callback)
        .ok_or("`deployment_callback_url` names no workflow run (…/actions/runs/ID/deployment_protection_rule)")?;
    if hookgate_github::context::Repository::parse(repository).is_none() {
        return Err(format!(
            "`repository.full_name` {repository:?} is not owner/name"
        ));
    }
    if environment.len() > 255 {
        return Err("`environment` is longer than 255 characters".to_owned());
    }
    let deployment_id = payload
        .pointer("/deployment/id")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    // GitHub waits 30 days from the deployment's request, not from this delivery (which may be
    // a redelivery days later): the gate ends by then, an hour early to be answered in time.
    let github_gives_up = payload
        .pointer("/deployment/created_at")
        .and_then(Value::as_str)
        .and_then(|at| humantime::parse_rfc3339_weak(at).ok())
        .map(|at| at + crate::settings::GITHUB_LIMIT - Duration::from_secs(3600));
    let deadline = match github_gives_up {
        Some(limit) => (received_at + timeout).min(limit),
        None => received_at + timeout,
    };
    Ok(Some(NewGate {
        delivery: delivery.to_owned(),
        repository: repository.to_owned(),
        environment: environment.to_owned(),
        run_id,
        deployment_id,
        event: payload.to_string(),
        received_at,
        deadline,
    }))
}

/// The run id in `…/actions/runs/{run_id}/deployment_protection_rule`.
fn run_id_of(url: &str) -> Option<i64> {
    let path = url.split(['?', '#']).next()?;
    let rest = path.strip_suffix("/deployment_protection_rule")?;
    let (_, id) = rest.rsplit_once("/actions/runs/")?;
    id.parse::<i64>().ok().filter(|id| *id > 0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_seed_corpus_parses_without_panic() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fuzz/corpus/github_event"
        );
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            let _ = parse_event("d", &bytes, SystemTime::now(), Duration::from_secs(60));
            seen += 1;
        }
        assert!(seen >= 3, "the corpus is missing");
    }

    #[test]
    fn events_parse_into_gates_or_say_why_not() {
        let event = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/vectors/github-deployment-protection-rule-event.json"
        ))
        .unwrap();
        let now = SystemTime::now();
        let mut event: Value = serde_json::from_slice(&event).unwrap();
        event["deployment"]["created_at"] =
            serde_json::json!(humantime::format_rfc3339_seconds(now).to_string());
        let event = serde_json::to_vec(&event).unwrap();
        let gate = parse_event("d1", &event, now, Duration::from_secs(60))
            .unwrap()
            .unwrap();
        assert_eq!(gate.repository, "acme/web");
        assert_eq!(gate.run_id, 1);
        assert_eq!(gate.deadline, now + Duration::from_secs(60));
        // A delivery of a deployment requested 30 days ago has no time left.
        let mut old: Value = serde_json::from_slice(&event).unwrap();
        old["deployment"]["created_at"] = serde_json::json!("2020-01-01T00:00:00Z");
        let gate = parse_event(
            "d2",
            old.to_string().as_bytes(),
            now,
            Duration::from_secs(60),
        )
        .unwrap()
        .unwrap();
        assert!(gate.deadline < now);
        assert!(
            parse_event("d", b"{\"action\": \"other\"}", now, Duration::ZERO)
                .unwrap()
                .is_none()
        );
        let err =
            parse_event("d", b"{\"action\": \"requested\"}", now, Duration::ZERO).unwrap_err();
        assert!(err.contains("repository.full_name"), "{err}");
        assert!(parse_event("d", b"\xff", now, Duration::ZERO).is_err());
    }

    #[test]
    fn the_run_id_comes_from_the_callback_url() {
        assert_eq!(
            run_id_of(
                "https://api.github.com/repos/o/r/actions/runs/42/deployment_protection_rule"
            ),
            Some(42)
        );
        assert_eq!(
            run_id_of("https://api.github.com/repos/o/r/actions/runs/x/deployment_protection_rule"),
            None
        );
        assert_eq!(run_id_of("https://example.test/elsewhere"), None);
    }
}
