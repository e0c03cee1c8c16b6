//! The service on the other end of the demo's loop, standing in for a test repository's workflow:
//! it takes the webhook, answers 202 at once, "runs tests" for a moment, and then calls back with
//! `hookgate callback`, signing the verdict with the shared secret (Standard Webhooks).
//!
//! Usage: `hookgate-demo-service HOOKGATE_BINARY` with `DEMO_CALLBACK_SECRET` set. It prints
//! `listening on http://127.0.0.1:PORT` and serves until it is killed.
//! `hookgate-demo-service fake-github` stands in for GitHub instead (see [`fake_github`]).

mod fake_github;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::Value;

struct Settings {
    hookgate: String,
    secret: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("fake-github") {
        return fake_github::serve().await;
    }
    let (Some(hookgate), Ok(secret)) = (
        std::env::args().nth(1),
        std::env::var("DEMO_CALLBACK_SECRET"),
    ) else {
        eprintln!("usage: DEMO_CALLBACK_SECRET=... hookgate-demo-service HOOKGATE_BINARY");
        return ExitCode::from(2);
    };
    let settings = Arc::new(Settings { hookgate, secret });
    let app = Router::new()
        .route("/tests", post(start_tests))
        .with_state(settings);
    listen_and_serve(app).await
}

/// Serves `app` on 127.0.0.1 and a free port, printing `listening on URL`.
async fn listen_and_serve(app: Router) -> ExitCode {
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("cannot listen on 127.0.0.1: {err}");
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(addr) => eprintln!("listening on http://{addr}"),
        Err(err) => {
            eprintln!("cannot read the listening address: {err}");
            return ExitCode::FAILURE;
        }
    }
    if let Err(err) = axum::serve(listener, app).await {
        eprintln!("server stopped: {err}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Accepts the webhook and starts the "tests" in the background.
async fn start_tests(State(settings): State<Arc<Settings>>, body: String) -> (StatusCode, String) {
    let request: Value = match serde_json::from_str(&body) {
        Ok(value) => value,
        Err(err) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("body is not JSON: {err}\n"),
            );
        }
    };
    let Some(callback_url) = request.get("callbackUri").and_then(Value::as_str) else {
        return (
            StatusCode::BAD_REQUEST,
            "body has no callbackUri\n".to_owned(),
        );
    };
    let suite = request
        .get("suite")
        .and_then(Value::as_str)
        .unwrap_or("default")
        .to_owned();
    let should_fail = request
        .get("fail")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    eprintln!("service: running the `{suite}` suite; will call back in 2 s");
    let callback_url = callback_url.to_owned();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let message = if should_fail {
            format!("**{suite}**: 41 passed, 1 failed (`checkout_applies_discount`)")
        } else {
            format!("**{suite}**: 42 tests passed in 2.0 s")
        };
        let status = tokio::process::Command::new(&settings.hookgate)
            .args(["callback", "--url", &callback_url, "--scheme", "standard"])
            .args(["--success", if should_fail { "false" } else { "true" }])
            .args(["--message", &message])
            .env("HOOKGATE_HMAC_SECRET", &settings.secret)
            .status()
            .await;
        match status {
            Ok(status) if status.success() => eprintln!("service: called back (signed)"),
            Ok(status) => eprintln!("service: `hookgate callback` failed: {status}"),
            Err(err) => eprintln!("service: cannot run `hookgate callback`: {err}"),
        }
    });
    (StatusCode::ACCEPTED, "started\n".to_owned())
}
