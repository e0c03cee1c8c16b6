//! A stand-in for GitHub's REST API, on 127.0.0.1 and a free port.
//!
//! It records every call, checks GitHub's headers and authentication (the configured token,
//! installation tokens it issued, or an RS256 JWT of the test App), checks each request body
//! and each answer it gives against the schemas of GitHub's OpenAPI description (see
//! [`openapi`]), and keeps the check runs, deployments, statuses and dispatches it was sent.
//! Anything wrong is kept as a problem; tests end with [`FakeGithub::assert_no_problems`].
//!
//! Answers can be scripted ([`FakeGithub::script`]): the next matching request gets the scripted
//! status and headers instead (a rate limit, a 502), and those answers are not checked against
//! the description, which does not list them.
//!
//! `GET /repos/{owner}/{repo}/installation`, `GET /repos/{owner}/{repo}/commits/{ref}/check-runs`
//! and `GET /repos/{owner}/{repo}/actions/runs/{id}` (a dispatched run: completed, success
//! unless [`FakeGithub::set_run_conclusion`] says otherwise) are served but not in the subset,
//! so neither side of them is checked against a schema. A run's jobs and its cancellation are
//! checked against `tests/vectors/github-openapi-actions-runs.json`.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

pub mod openapi;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use self::openapi::OpenApi;

/// The test App's id, and the id of its installation on every repository.
pub const APP_ID: u64 = 4242;
pub const INSTALLATION_ID: u64 = 777;

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: Value,
    pub authorization: String,
    pub status: u16,
    pub at: Instant,
}

/// An answer to give instead of the normal one.
#[derive(Debug, Clone)]
pub struct Scripted {
    pub method: &'static str,
    pub path_suffix: &'static str,
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Value,
    /// Whether GitHub acted on the request before answering (a 502 after a dispatch was
    /// queued): the request then also takes effect.
    pub acted: bool,
}

impl Scripted {
    /// Answers the next `method ...path_suffix` with `status` and `body`, without acting.
    pub fn new(method: &'static str, path_suffix: &'static str, status: u16, body: Value) -> Self {
        Scripted {
            method,
            path_suffix,
            status,
            headers: Vec::new(),
            body,
            acted: false,
        }
    }

    /// Adds a response header.
    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    /// Lets the request take effect before the scripted answer.
    pub fn after_acting(mut self) -> Self {
        self.acted = true;
        self
    }
}

#[derive(Default)]
struct Store {
    calls: Vec<Call>,
    problems: Vec<String>,
    scripts: VecDeque<Scripted>,
    tokens: Vec<String>,
    next_id: u64,
    check_runs: Vec<Value>,
    deployments: Vec<Value>,
    statuses: Vec<(u64, Value)>,
    dispatches: Vec<(String, Value)>,
    /// How long installation tokens last (GitHub: an hour).
    token_lifetime: Option<Duration>,
    /// How dispatched runs end: `None` keeps them running; by default they succeed.
    run_conclusion: Option<Option<String>>,
    /// The runs cancelled through `POST .../actions/runs/{id}/cancel`.
    cancelled_runs: Vec<u64>,
    /// Repository files served by the contents API: (owner/name, path, ref or None for the
    /// default branch, text).
    files: Vec<(String, String, Option<String>, String)>,
    /// Reviews of deployment protection rules: (run id, body).
    reviews: Vec<(u64, Value)>,
}

struct Shared {
    store: Mutex<Store>,
    openapi: OpenApi,
    app_public_key: Option<jsonwebtoken::DecodingKey>,
    base: String,
}

/// The running fake.
pub struct FakeGithub {
    pub url: String,
    shared: Arc<Shared>,
}

/// The test App's private key (a committed test fixture, see tests/vectors/README.md).
pub fn app_private_key() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/github-app-test-key.pem"
    ))
    .expect("read the test App key")
}

impl FakeGithub {
    /// Starts the fake; `token` is the one static token it accepts.
    pub async fn start(token: &str) -> Self {
        let public = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/vectors/github-app-test-key.pub.pem"
        ))
        .expect("read the test App public key");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared {
            store: Mutex::new(Store {
                tokens: vec![token.to_owned()],
                next_id: 1000,
                ..Store::default()
            }),
            openapi: OpenApi::load(),
            app_public_key: Some(jsonwebtoken::DecodingKey::from_rsa_pem(&public).unwrap()),
            base: url.clone(),
        });
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeGithub { url, shared }
    }

    /// Gives the next request to `method ...path_suffix` the scripted answer.
    pub fn script(&self, scripted: Scripted) {
        self.shared
            .store
            .lock()
            .unwrap()
            .scripts
            .push_back(scripted);
    }

    /// Makes installation tokens expire `lifetime` after they are issued.
    pub fn set_run_conclusion(&self, conclusion: Option<&str>) {
        self.shared.store.lock().unwrap().run_conclusion = Some(conclusion.map(str::to_owned));
    }

    /// The ids of the workflow runs cancelled.
    pub fn cancelled_runs(&self) -> Vec<u64> {
        self.shared.store.lock().unwrap().cancelled_runs.clone()
    }

    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.shared.store.lock().unwrap().token_lifetime = Some(lifetime);
    }

    /// Adds a deployment, as a job's `environment:` would have created it.
    pub fn add_deployment(&self, sha: &str, environment: &str) -> u64 {
        let mut store = self.shared.store.lock().unwrap();
        store.next_id += 1;
        let id = store.next_id;
        let deployment = deployment_json(&self.shared.base, id, sha, environment);
        store.deployments.push(deployment);
        id
    }

    /// Serves `text` as `path` of `repository`, at `git_ref` (`None`: the default branch).
    pub fn set_file(&self, repository: &str, path: &str, git_ref: Option<&str>, text: &str) {
        let mut store = self.shared.store.lock().unwrap();
        store
            .files
            .retain(|(r, p, g, _)| !(r == repository && p == path && g.as_deref() == git_ref));
        store.files.push((
            repository.to_owned(),
            path.to_owned(),
            git_ref.map(str::to_owned),
            text.to_owned(),
        ));
    }

    /// Every review of a deployment protection rule: (run id, body), oldest first.
    pub fn reviews(&self) -> Vec<(u64, Value)> {
        self.shared.store.lock().unwrap().reviews.clone()
    }

    /// The reviews that approve or reject (not status reports).
    pub fn answers(&self) -> Vec<(u64, Value)> {
        self.reviews()
            .into_iter()
            .filter(|(_, body)| body.get("state").is_some())
            .collect()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.shared.store.lock().unwrap().calls.clone()
    }

    pub fn problems(&self) -> Vec<String> {
        self.shared.store.lock().unwrap().problems.clone()
    }

    /// Every check run as it is now.
    pub fn check_runs(&self) -> Vec<Value> {
        self.shared.store.lock().unwrap().check_runs.clone()
    }

    /// Every deployment status, with its deployment's id.
    pub fn statuses(&self) -> Vec<(u64, Value)> {
        self.shared.store.lock().unwrap().statuses.clone()
    }

    pub fn deployments(&self) -> Vec<Value> {
        self.shared.store.lock().unwrap().deployments.clone()
    }

    /// Dispatches that took effect: (path, body).
    pub fn dispatches(&self) -> Vec<(String, Value)> {
        self.shared.store.lock().unwrap().dispatches.clone()
    }

    /// Fails the test if any request or answer broke GitHub's rules or schemas.
    pub fn assert_no_problems(&self) {
        let problems = self.problems();
        assert!(
            problems.is_empty(),
            "the fake GitHub saw problems:\n{}",
            problems.join("\n")
        );
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let query = uri.query().unwrap_or_default().to_owned();
    let method = method.as_str().to_owned();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let authorization = header("authorization");
    let json_body: Option<Value> = if body.is_empty() {
        None
    } else {
        serde_json::from_slice(&body).ok()
    };

    let mut problems = Vec::new();
    let label = format!("{method} {path}");
    if header("accept") != "application/vnd.github+json" {
        problems.push(format!("{label}: Accept is `{}`", header("accept")));
    }
    if header("x-github-api-version") != "2022-11-28" {
        problems.push(format!("{label}: no X-GitHub-Api-Version 2022-11-28"));
    }
    if header("user-agent").is_empty() {
        problems.push(format!("{label}: no User-Agent"));
    }
    if !body.is_empty() && json_body.is_none() {
        problems.push(format!("{label}: body is not JSON"));
    }

    let app_call = path.starts_with("/app/") || path.ends_with("/installation");
    let bearer = authorization
        .strip_prefix("Bearer ")
        .unwrap_or_default()
        .to_owned();
    let authorized = if app_call {
        match check_app_jwt(&shared, &bearer) {
            Ok(()) => true,
            Err(why) => {
                problems.push(format!("{label}: bad App JWT: {why}"));
                false
            }
        }
    } else {
        let known = shared.store.lock().unwrap().tokens.contains(&bearer);
        if !known {
            problems.push(format!("{label}: unknown token"));
        }
        known
    };

    let operation = shared.openapi.find(&method, &path);
    match operation {
        Some(op) => {
            for error in op.check_request(json_body.as_ref()) {
                problems.push(format!("{label} ({}): request: {error}", op.id));
            }
        }
        None if method == "GET"
            && (path.ends_with("/installation")
                || path.ends_with("/check-runs")
                || path.contains("/actions/runs/")) => {}
        None => problems.push(format!("{label}: not an operation of the subset")),
    }

    let scripted = {
        let mut store = shared.store.lock().unwrap();
        let position = store
            .scripts
            .iter()
            .position(|s| s.method == method && path.ends_with(s.path_suffix));
        position.and_then(|i| store.scripts.remove(i))
    };

    let (status, response_headers, answer) = if !authorized {
        (401, Vec::new(), Some(json!({"message": "Bad credentials"})))
    } else if let Some(scripted) = &scripted {
        if scripted.acted {
            let _ = act(&shared, &method, &path, &query, json_body.as_ref());
        }
        (
            scripted.status,
            scripted.headers.clone(),
            Some(scripted.body.clone()),
        )
    } else {
        let (status, answer) = act(&shared, &method, &path, &query, json_body.as_ref());
        if let Some(op) = operation {
            for error in op.check_response(status, answer.as_ref()) {
                problems.push(format!("{label} ({}): response {status}: {error}", op.id));
            }
        }
        (status, Vec::new(), answer)
    };

    let mut store = shared.store.lock().unwrap();
    store.problems.extend(problems);
    store.calls.push(Call {
        method,
        path,
        query,
        body: json_body.unwrap_or(Value::Null),
        authorization,
        status,
        at: Instant::now(),
    });
    drop(store);

    let mut response = match answer {
        Some(body) => (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response(),
        None => StatusCode::from_u16(status).unwrap().into_response(),
    };
    for (name, value) in response_headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

fn check_app_jwt(shared: &Shared, token: &str) -> Result<(), String> {
    let key = shared.app_public_key.as_ref().ok_or("no App configured")?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.leeway = 0;
    let data = jsonwebtoken::decode::<Value>(token, key, &validation).map_err(|e| e.to_string())?;
    let claims = data.claims;
    let iat = claims["iat"].as_u64().ok_or("no iat")?;
    let exp = claims["exp"].as_u64().ok_or("no exp")?;
    let now = unix_now();
    if claims["iss"] != json!(APP_ID) && claims["iss"] != json!(APP_ID.to_string()) {
        return Err(format!("iss is {}", claims["iss"]));
    }
    if iat > now {
        return Err("iat is in the future".to_owned());
    }
    if exp <= iat || exp - iat > 600 {
        return Err(format!(
            "lifetime {}s is over ten minutes",
            exp.saturating_sub(iat)
        ));
    }
    Ok(())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

fn segments(path: &str) -> Vec<&str> {
    path.trim_start_matches('/').split('/').collect()
}

/// Does what GitHub would do, and gives its answer (status and JSON body).
fn act(
    shared: &Shared,
    method: &str,
    path: &str,
    query: &str,
    body: Option<&Value>,
) -> (u16, Option<Value>) {
    let base = &shared.base;
    let empty = json!({});
    let body = body.unwrap_or(&empty);
    let mut store = shared.store.lock().unwrap();
    store.next_id += 1;
    let id = store.next_id;
    match (method, segments(path).as_slice()) {
        ("GET", ["repos", owner, repo, "contents", file]) => {
            let repository = format!("{owner}/{repo}");
            let wanted_ref = query
                .split('&')
                .find_map(|pair| pair.strip_prefix("ref="))
                .map(percent_decode);
            let found = store.files.iter().find(|(r, p, g, _)| {
                *r == repository && p == &percent_decode(file) && *g == wanted_ref
            });
            match found {
                Some((_, path, _, text)) => {
                    let content = base64::Engine::encode(
                        &base64::engine::general_purpose::STANDARD,
                        text.as_bytes(),
                    );
                    let url = format!("{base}/repos/{repository}/contents/{path}");
                    (
                        200,
                        Some(json!({
                            "type": "file",
                            "encoding": "base64",
                            "size": text.len(),
                            "name": path,
                            "path": path,
                            "content": content,
                            "sha": "3d21ec53a331a6f037a91c368710b99387d012c1",
                            "url": url,
                            "git_url": format!("{base}/repos/{repository}/git/blobs/3d21ec53"),
                            "html_url": format!("{base}/{repository}/blob/main/{path}"),
                            "download_url": format!("{base}/raw/{repository}/main/{path}"),
                            "_links": {"self": url, "git": format!("{base}/repos/{repository}/git/blobs/3d21ec53"), "html": format!("{base}/{repository}/blob/main/{path}")},
                        })),
                    )
                }
                None => (
                    404,
                    Some(
                        json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest/repos/contents#get-repository-content", "status": "404"}),
                    ),
                ),
            }
        }
        (
            "POST",
            [
                "repos",
                _,
                _,
                "actions",
                "runs",
                run_id,
                "deployment_protection_rule",
            ],
        ) => {
            store
                .reviews
                .push((run_id.parse().unwrap_or(0), body.clone()));
            (204, None)
        }
        ("GET", ["repos", _, _, "installation"]) => {
            (200, Some(json!({"id": INSTALLATION_ID, "app_id": APP_ID})))
        }
        ("POST", ["app", "installations", _, "access_tokens"]) => {
            let token = format!("ghs_installation{id}");
            store.tokens.push(token.clone());
            let lifetime = store.token_lifetime.unwrap_or(Duration::from_secs(3600));
            let expires = SystemTime::now() + lifetime;
            (
                201,
                Some(json!({
                    "token": token,
                    "expires_at": humantime::format_rfc3339_seconds(expires).to_string(),
                    "repository_selection": "selected",
                })),
            )
        }
        ("POST", ["repos", owner, repo, "check-runs"]) => {
            let mut run = check_run_json(base, owner, repo, id, body);
            merge_check_run(&mut run, body);
            store.check_runs.push(run.clone());
            (201, Some(run))
        }
        ("GET", ["repos", _, _, "commits", sha, "check-runs"]) => {
            let name = query
                .split('&')
                .find_map(|pair| pair.strip_prefix("check_name="))
                .map(percent_decode);
            let runs: Vec<Value> = store
                .check_runs
                .iter()
                .filter(|r| r["head_sha"] == *sha)
                .filter(|r| name.as_deref().is_none_or(|n| r["name"] == n))
                .cloned()
                .collect();
            (
                200,
                Some(json!({"total_count": runs.len(), "check_runs": runs})),
            )
        }
        ("GET", ["repos", owner, repo, "actions", "runs", run_id]) => {
            let (status, conclusion) = match &store.run_conclusion {
                None => ("completed", Some("success".to_owned())),
                Some(None) => ("in_progress", None),
                Some(Some(conclusion)) => ("completed", Some(conclusion.clone())),
            };
            (
                200,
                Some(json!({
                    "id": run_id.parse::<u64>().unwrap_or_default(),
                    "status": status,
                    "conclusion": conclusion,
                    "html_url": format!("https://github.com/{owner}/{repo}/actions/runs/{run_id}"),
                })),
            )
        }
        ("GET", ["repos", owner, repo, "actions", "runs", run_id, "jobs"]) => {
            let run: u64 = run_id.parse().unwrap_or_default();
            let failed = matches!(&store.run_conclusion, Some(Some(c)) if c != "success");
            let job = |id: u64, name: &str, conclusion: &str, steps: Value| {
                json!({
                    "id": id, "node_id": format!("J_{id}"), "run_id": run,
                    "run_url": format!("{base}/repos/{owner}/{repo}/actions/runs/{run}"),
                    "head_sha": "0123456789abcdef0123456789abcdef01234567",
                    "workflow_name": "load", "head_branch": "main", "name": name,
                    "url": format!("{base}/repos/{owner}/{repo}/actions/jobs/{id}"),
                    "html_url": format!("https://github.com/{owner}/{repo}/actions/runs/{run}/job/{id}"),
                    "status": "completed", "conclusion": conclusion,
                    "started_at": "2026-12-06T10:00:00Z", "completed_at": "2026-12-06T10:05:00Z",
                    "created_at": "2026-12-06T09:59:00Z",
                    "check_run_url": format!("{base}/repos/{owner}/{repo}/check-runs/{id}"),
                    "labels": ["ubuntu-latest"], "runner_id": 1, "runner_name": "runner-1",
                    "runner_group_id": 1, "runner_group_name": "GitHub Actions",
                    "steps": steps,
                })
            };
            let step = |number: u64, name: &str, conclusion: &str| json!({"name": name, "status": "completed", "conclusion": conclusion, "number": number});
            let mut jobs = vec![job(
                501,
                "setup",
                "success",
                json!([step(1, "Set up job", "success")]),
            )];
            if failed {
                jobs.push(job(
                    502,
                    "e2e",
                    "failure",
                    json!([
                        step(1, "Set up job", "success"),
                        step(4, "Run suites", "failure")
                    ]),
                ));
            }
            (200, Some(json!({"total_count": jobs.len(), "jobs": jobs})))
        }
        ("POST", ["repos", _, _, "actions", "runs", run_id, "cancel"]) => {
            store
                .cancelled_runs
                .push(run_id.parse().unwrap_or_default());
            (202, Some(json!({})))
        }
        ("PATCH", ["repos", _, _, "check-runs", run_id]) => {
            let run_id: u64 = run_id.parse().unwrap_or_default();
            match store
                .check_runs
                .iter_mut()
                .find(|r| r["id"].as_u64() == Some(run_id))
            {
                Some(run) => {
                    merge_check_run(run, body);
                    (200, Some(run.clone()))
                }
                None => (404, Some(json!({"message": "Not Found"}))),
            }
        }
        ("GET", ["repos", _, _, "deployments"]) => {
            let param = |name: &str| {
                query
                    .split('&')
                    .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
                    .map(percent_decode)
            };
            let (sha, environment) = (param("sha"), param("environment"));
            let mut found: Vec<Value> = store
                .deployments
                .iter()
                .filter(|d| sha.as_deref().is_none_or(|s| d["sha"] == s))
                .filter(|d| environment.as_deref().is_none_or(|e| d["environment"] == e))
                .cloned()
                .collect();
            found.reverse();
            (200, Some(Value::Array(found)))
        }
        ("POST", ["repos", _, _, "deployments"]) => {
            let deployment = deployment_json(
                base,
                id,
                body["ref"].as_str().unwrap_or_default(),
                body["environment"].as_str().unwrap_or("production"),
            );
            store.deployments.push(deployment.clone());
            (201, Some(deployment))
        }
        ("POST", ["repos", owner, repo, "deployments", deployment, "statuses"]) => {
            let deployment: u64 = deployment.parse().unwrap_or_default();
            let Some(environment) = store
                .deployments
                .iter()
                .find(|d| d["id"].as_u64() == Some(deployment))
                .map(|d| d["environment"].clone())
            else {
                return (404, Some(json!({"message": "Not Found"})));
            };
            // A status that names an environment moves the deployment there.
            let environment = body.get("environment").cloned().unwrap_or(environment);
            let url = format!("{base}/repos/{owner}/{repo}/deployments/{deployment}");
            let log_url = body["log_url"].as_str().unwrap_or_default();
            let mut status = json!({
                "url": format!("{url}/statuses/{id}"),
                "id": id,
                "node_id": format!("DES_{id}"),
                "state": body["state"],
                "creator": null,
                "description": body["description"].as_str().unwrap_or_default(),
                "environment": environment,
                "target_url": log_url,
                "log_url": log_url,
                "created_at": now_rfc3339(),
                "updated_at": now_rfc3339(),
                "deployment_url": url,
                "repository_url": format!("{base}/repos/{owner}/{repo}"),
            });
            if let Some(env_url) = body["environment_url"].as_str() {
                status["environment_url"] = json!(env_url);
            }
            store.statuses.push((deployment, status.clone()));
            (201, Some(status))
        }
        ("POST", ["repos", _, _, "dispatches"]) => {
            store.dispatches.push((path.to_owned(), body.clone()));
            (204, None)
        }
        (
            "POST",
            [
                "repos",
                owner,
                repo,
                "actions",
                "workflows",
                _,
                "dispatches",
            ],
        ) => {
            store.dispatches.push((path.to_owned(), body.clone()));
            if body["return_run_details"] == json!(true) {
                (
                    200,
                    Some(json!({
                        "workflow_run_id": id,
                        "run_url": format!("{base}/repos/{owner}/{repo}/actions/runs/{id}"),
                        "html_url": format!("https://github.com/{owner}/{repo}/actions/runs/{id}"),
                    })),
                )
            } else {
                (204, None)
            }
        }
        _ => (404, Some(json!({"message": "Not Found"}))),
    }
}

fn check_run_json(base: &str, owner: &str, repo: &str, id: u64, body: &Value) -> Value {
    json!({
        "id": id,
        "node_id": format!("CR_{id}"),
        "head_sha": body["head_sha"],
        "name": body["name"],
        "external_id": body["external_id"].as_str(),
        "url": format!("{base}/repos/{owner}/{repo}/check-runs/{id}"),
        "html_url": format!("https://github.com/{owner}/{repo}/runs/{id}"),
        "details_url": null,
        "status": "queued",
        "conclusion": null,
        "started_at": null,
        "completed_at": null,
        "output": {
            "title": null,
            "summary": null,
            "text": null,
            "annotations_count": 0,
            "annotations_url": format!("{base}/repos/{owner}/{repo}/check-runs/{id}/annotations"),
        },
        "check_suite": {"id": 5},
        "app": null,
        "pull_requests": [],
    })
}

/// Applies a create or update body to a stored check run, as GitHub does.
fn merge_check_run(run: &mut Value, body: &Value) {
    for key in [
        "name",
        "details_url",
        "external_id",
        "status",
        "started_at",
        "completed_at",
    ] {
        if let Some(value) = body.get(key) {
            run[key] = value.clone();
        }
    }
    if let Some(conclusion) = body.get("conclusion") {
        run["conclusion"] = conclusion.clone();
        run["status"] = json!("completed");
        if run["completed_at"].is_null() {
            run["completed_at"] = json!(now_rfc3339());
        }
    }
    if let Some(output) = body.get("output") {
        for key in ["title", "summary", "text"] {
            if let Some(value) = output.get(key) {
                run["output"][key] = value.clone();
            }
        }
    }
}

fn deployment_json(base: &str, id: u64, sha: &str, environment: &str) -> Value {
    let repo_url = format!("{base}/repos/octo/app");
    json!({
        "url": format!("{repo_url}/deployments/{id}"),
        "id": id,
        "node_id": format!("DE_{id}"),
        "sha": sha,
        "ref": sha,
        "task": "deploy",
        "payload": {},
        "environment": environment,
        "description": null,
        "creator": null,
        "created_at": now_rfc3339(),
        "updated_at": now_rfc3339(),
        "statuses_url": format!("{repo_url}/deployments/{id}/statuses"),
        "repository_url": repo_url,
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
