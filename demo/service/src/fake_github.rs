//! `hookgate-demo-service fake-github`: a small stand-in for GitHub for the demo's deployment
//! protection rule, on 127.0.0.1. It plays both of GitHub's parts: it sends the App signed
//! `deployment_protection_rule` events (`POST /demo/deploy?environment=...&run_id=...`), and it
//! serves the REST calls the App makes back (its installation, installation tokens, the
//! deployment file's contents, and the reviews that approve or reject), printing each review.
//! `GET /demo/reviews` lists the reviews taken. The tests' fake (tests/it/fake_github) also
//! checks every call against GitHub's schemas; this one only shows the loop.
//!
//! Settings: `DEMO_RELAY_URL` (where the App's relay listens), `DEMO_WEBHOOK_SECRET` (the App's
//! webhook secret), `DEMO_FILES` (a directory holding `OWNER/REPO/PATH` files).

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::{Value, json};

struct Fake {
    relay_url: String,
    secret: hookgate_auth::github::Secret,
    files: std::path::PathBuf,
    reviews: Mutex<Vec<Value>>,
    http: reqwest::Client,
}

/// Serves until killed.
pub async fn serve() -> ExitCode {
    let (Ok(relay_url), Ok(secret), Ok(files)) = (
        std::env::var("DEMO_RELAY_URL"),
        std::env::var("DEMO_WEBHOOK_SECRET"),
        std::env::var("DEMO_FILES"),
    ) else {
        eprintln!(
            "usage: DEMO_RELAY_URL=... DEMO_WEBHOOK_SECRET=... DEMO_FILES=DIR hookgate-demo-service fake-github"
        );
        return ExitCode::from(2);
    };
    let Ok(secret) = hookgate_auth::github::Secret::new(&secret) else {
        eprintln!("DEMO_WEBHOOK_SECRET is empty");
        return ExitCode::from(2);
    };
    let fake = Arc::new(Fake {
        relay_url: relay_url.trim_end_matches('/').to_owned(),
        secret,
        files: files.into(),
        reviews: Mutex::new(Vec::new()),
        http: reqwest::Client::new(),
    });
    let app = Router::new()
        .route("/repos/{owner}/{repo}/installation", get(installation))
        .route("/app/installations/{id}/access_tokens", post(access_token))
        .route("/repos/{owner}/{repo}/contents/{*path}", get(contents))
        .route(
            "/repos/{owner}/{repo}/actions/runs/{run_id}/deployment_protection_rule",
            post(review),
        )
        .route("/demo/deploy", post(deploy))
        .route("/demo/reviews", get(reviews))
        .with_state(fake);
    crate::listen_and_serve(app).await
}

async fn installation() -> Json<Value> {
    Json(json!({"id": 1, "app_id": 1}))
}

async fn access_token() -> (StatusCode, Json<Value>) {
    let expires = SystemTime::now() + Duration::from_secs(3600);
    let seconds = expires
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    (
        StatusCode::CREATED,
        Json(json!({
            "token": format!("ghs_demo{seconds}"),
            "expires_at": humantime::format_rfc3339_seconds(expires).to_string(),
        })),
    )
}

async fn contents(
    State(fake): State<Arc<Fake>>,
    Path((owner, repo, path)): Path<(String, String, String)>,
) -> (StatusCode, Json<Value>) {
    let safe = |part: &str| !part.is_empty() && part != ".." && !part.contains('\\');
    if !(safe(&owner) && safe(&repo) && path.split('/').all(safe)) {
        return (StatusCode::NOT_FOUND, Json(json!({"message": "Not Found"})));
    }
    match std::fs::read(fake.files.join(&owner).join(&repo).join(&path)) {
        Ok(bytes) => (
            StatusCode::OK,
            Json(json!({
                "type": "file",
                "encoding": "base64",
                "path": path,
                "content": base64::engine::general_purpose::STANDARD.encode(bytes),
            })),
        ),
        Err(_) => (StatusCode::NOT_FOUND, Json(json!({"message": "Not Found"}))),
    }
}

async fn review(
    State(fake): State<Arc<Fake>>,
    Path((owner, repo, run_id)): Path<(String, String, u64)>,
    Json(body): Json<Value>,
) -> StatusCode {
    let what = body["state"].as_str().unwrap_or("status report");
    eprintln!(
        "github: {owner}/{repo} run {run_id}, environment {}: {what}\n{}\n",
        body["environment_name"].as_str().unwrap_or("?"),
        indent(body["comment"].as_str().unwrap_or(""))
    );
    let mut reviews = fake
        .reviews
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    reviews.push(json!({"run_id": run_id, "review": body}));
    StatusCode::NO_CONTENT
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|line| format!("    | {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

async fn reviews(State(fake): State<Arc<Fake>>) -> Json<Value> {
    let reviews = fake
        .reviews
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    Json(Value::Array(reviews.clone()))
}

/// Sends the App a signed `deployment_protection_rule` event, as GitHub does when a job that
/// deploys to a protected environment starts.
async fn deploy(
    State(fake): State<Arc<Fake>>,
    Query(query): Query<HashMap<String, String>>,
) -> (StatusCode, String) {
    let repository = query.get("repository").map_or("demo/shop", String::as_str);
    let environment = query
        .get("environment")
        .map_or("production", String::as_str);
    let run_id = query.get("run_id").map_or("1", String::as_str);
    let event = json!({
        "action": "requested",
        "environment": environment,
        "event": "push",
        "deployment_callback_url": format!("https://api.github.com/repos/{repository}/actions/runs/{run_id}/deployment_protection_rule"),
        "deployment": {"id": 1, "sha": "0123456789abcdef0123456789abcdef01234567", "ref": "main", "environment": environment},
        "repository": {"full_name": repository},
        "installation": {"id": 1},
        "sender": {"login": "octocat"},
    });
    let body = event.to_string();
    let signature = hookgate_auth::github::sign(&fake.secret, body.as_bytes());
    let delivery = format!("demo-{run_id}-{environment}");
    eprintln!(
        "github: deployment_protection_rule for {repository} run {run_id}, environment {environment} (delivery {delivery}, signed)"
    );
    let answer = fake
        .http
        .post(format!("{}/github/webhook", fake.relay_url))
        .header("X-GitHub-Event", "deployment_protection_rule")
        .header("X-GitHub-Delivery", &delivery)
        .header("X-Hub-Signature-256", signature)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await;
    match answer {
        Ok(response) => (
            StatusCode::OK,
            format!("the App answered {}\n", response.status()),
        ),
        Err(err) => (
            StatusCode::BAD_GATEWAY,
            format!("cannot reach the App: {err}\n"),
        ),
    }
}
