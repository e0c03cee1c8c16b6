//! The App's benchmark: what a gate costs the relay when no runner waits for it. It starts the
//! real `hookgate relay` (release build) as a GitHub App on a SQLite file, with a stand-in for
//! GitHub and a stand-in service in this process, and measures:
//!
//! 1. memory: the relay's resident memory (VmRSS) once started, and again while `--gates N`
//!    gates (default 1,000) wait for their callbacks; the difference per gate;
//! 2. opening: the time from sending N signed `deployment_protection_rule` events to the N
//!    webhook requests reaching the service;
//! 3. callback to answer: for gates one at a time, the time from the service's callback to the
//!    review reaching GitHub (p50, p99). The baseline, in the same run and on the same relay:
//!    a slot opened with a relay token, a long poll waiting on it, and the time from a callback
//!    to the poll's answer, which is what a runner waiting for a gate sees;
//! 4. draining: the remaining callbacks sent at once, and the time until every gate is answered.
//!
//! Run with `cargo run --release -p gate-bench [-- --gates N]`; it builds `hookgate` in release
//! first when `target/release/hookgate` is missing (`HOOKGATE_BIN` names another binary).

// A report tool: its output is the point.
#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, bail};
use axum::Json;
use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::{Value, json};

const WEBHOOK_SECRET: &str = "gate-bench-webhook-secret";
const RELAY_TOKEN: &str = "gate-bench-relay-token-0123456789";
const REPOSITORY: &str = "bench/shop";
/// Gates answered one at a time for the latency figures.
const LATENCY_ROUNDS: usize = 200;

/// What the stand-ins saw.
#[derive(Default)]
struct Seen {
    /// The service's requests, by run id: the callback URL and token the gate sent.
    requests: HashMap<u64, (String, String)>,
    /// When each run's answer reached GitHub, and its state.
    answers: HashMap<u64, (Instant, String)>,
}

type Shared = Arc<Mutex<Seen>>;

fn main() -> anyhow::Result<()> {
    let mut gates = 1000usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--gates" => {
                gates = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .context("--gates takes a number")?;
            }
            other => bail!("usage: gate-bench [--gates N] (unknown argument {other:?})"),
        }
    }
    if gates <= LATENCY_ROUNDS {
        bail!("--gates must be more than {LATENCY_ROUNDS}");
    }
    let binary = hookgate_binary()?;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run(&binary, gates))
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn hookgate_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("HOOKGATE_BIN") {
        return Ok(PathBuf::from(path));
    }
    let path = workspace().join("target/release/hookgate");
    if !path.exists() {
        println!("building hookgate (release)...");
        let status = Command::new("cargo")
            .args(["build", "--release", "-p", "hookgate", "--bin", "hookgate"])
            .current_dir(workspace())
            .status()?;
        if !status.success() {
            bail!("cargo build failed");
        }
    }
    Ok(path)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(StdListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn serve(router: Router) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(url)
}

/// GitHub's part: the App's installation and tokens, the deployment file, and the reviews.
async fn fake_github(seen: Shared, deploy_yml: String) -> anyhow::Result<String> {
    let router =
        Router::new()
            .route(
                "/repos/{owner}/{repo}/installation",
                get(|| async { Json(json!({"id": 1, "app_id": 1})) }),
            )
            .route(
                "/app/installations/{id}/access_tokens",
                post(|| async {
                    (
                        StatusCode::CREATED,
                        Json(json!({"token": "ghs_bench", "expires_at": "2099-01-01T00:00:00Z"})),
                    )
                }),
            )
            .route(
                "/repos/{owner}/{repo}/contents/{*path}",
                get(move || {
                    let content = base64::engine::general_purpose::STANDARD.encode(&deploy_yml);
                    async move {
                        Json(json!({"type": "file", "encoding": "base64", "content": content}))
                    }
                }),
            )
            .route(
                "/repos/{owner}/{repo}/actions/runs/{run_id}/deployment_protection_rule",
                post(
                    |State(seen): State<Shared>,
                     UrlPath((_, _, run_id)): UrlPath<(String, String, u64)>,
                     Json(body): Json<Value>| async move {
                        if let Some(state) = body["state"].as_str() {
                            let mut seen = seen
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner);
                            seen.answers
                                .insert(run_id, (Instant::now(), state.to_owned()));
                        }
                        StatusCode::NO_CONTENT
                    },
                ),
            )
            .with_state(seen);
    serve(router).await
}

/// The service the gates call: it keeps each gate's callback URL and token.
async fn service(seen: Shared) -> anyhow::Result<String> {
    let router = Router::new()
        .route(
            "/tests",
            post(
                |State(seen): State<Shared>, Json(body): Json<Value>| async move {
                    let run = body["run"].as_str().and_then(|r| r.parse::<u64>().ok());
                    let url = body["callbackUri"].as_str().map(str::to_owned);
                    let token = body["token"].as_str().map(str::to_owned);
                    if let (Some(run), Some(url), Some(token)) = (run, url, token) {
                        let mut seen = seen
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        seen.requests.insert(run, (url, token));
                    }
                    StatusCode::ACCEPTED
                },
            ),
        )
        .with_state(seen);
    serve(router).await
}

fn deploy_file(service: &str) -> String {
    format!(
        r#"version: v1
kind: kubernetes
application: shop
targets:
  production:
    account: prod
    namespace: shop
    constraints:
      beforeDeployment:
        - runWebhook:
            name: tests
webhooks:
  - name: tests
    method: POST
    uriTemplate: {service}/tests
    headers:
      - key: Content-Type
        value: application/json
    bodyTemplate:
      inline: '{{"run": "{{{{ github.run_id }}}}", "callbackUri": "{{{{ armory.callbackUri }}}}", "token": "{{{{ callback.token }}}}"}}'
    timeout: 1h
"#
    )
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .context("no VmRSS")
}

fn event(run_id: u64) -> Value {
    let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    json!({
        "action": "requested",
        "environment": "production",
        "event": "push",
        "deployment_callback_url": format!("https://api.github.com/repos/{REPOSITORY}/actions/runs/{run_id}/deployment_protection_rule"),
        "deployment": {"id": run_id, "sha": "0123456789abcdef0123456789abcdef01234567", "ref": "main", "created_at": now},
        "repository": {"full_name": REPOSITORY},
        "installation": {"id": 1},
        "sender": {"login": "bench"},
    })
}

async fn send_event(client: &reqwest::Client, relay: &str, run_id: u64) -> anyhow::Result<()> {
    let body = serde_json::to_vec(&event(run_id))?;
    let secret = hookgate_auth::github::Secret::new(WEBHOOK_SECRET)?;
    let status = client
        .post(format!("{relay}/github/webhook"))
        .header("X-GitHub-Event", "deployment_protection_rule")
        .header("X-GitHub-Delivery", format!("bench-{run_id}"))
        .header(
            "X-Hub-Signature-256",
            hookgate_auth::github::sign(&secret, &body),
        )
        .body(body)
        .send()
        .await?
        .status();
    if status != reqwest::StatusCode::ACCEPTED {
        bail!("the App answered {status} to event {run_id}");
    }
    Ok(())
}

async fn call_back(client: &reqwest::Client, url: &str, token: &str) -> anyhow::Result<()> {
    let status = client
        .post(url)
        .bearer_auth(token)
        .json(&json!({"success": true, "mdMessage": "bench"}))
        .send()
        .await?
        .status();
    if status != reqwest::StatusCode::ACCEPTED {
        bail!("the relay answered {status} to a callback");
    }
    Ok(())
}

async fn wait_until(
    what: &str,
    limit: Duration,
    mut done: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let until = Instant::now() + limit;
    while !done() {
        if Instant::now() > until {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

struct Relay(Child);

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn run(binary: &Path, gates: usize) -> anyhow::Result<()> {
    let seen: Shared = Arc::default();
    let service_url = service(seen.clone()).await?;
    let github_url = fake_github(seen.clone(), deploy_file(&service_url)).await?;
    let dir = std::env::temp_dir().join(format!("gate-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("gates.yml"), "allowOutbound: [127.0.0.1]\n")?;
    let key = workspace().join("tests/vectors/github-app-test-key.pem");
    let port = free_port()?;
    let relay_url = format!("http://127.0.0.1:{port}");
    let child = Command::new(binary)
        .args([
            "relay",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--public-url",
            &relay_url,
        ])
        .args([
            "--store",
            &format!("sqlite:{}", dir.join("relay.sqlite").display()),
        ])
        .args(["--relay-token", RELAY_TOKEN, "--github-app-id", "1"])
        .arg("--github-app-key")
        .arg(&key)
        .args([
            "--github-webhook-secret",
            WEBHOOK_SECRET,
            "--github-api-url",
            &github_url,
        ])
        .arg("--gates-config")
        .arg(dir.join("gates.yml"))
        .args([
            "--gate-claim-interval",
            "100ms",
            "--gate-report-interval",
            "1h",
        ])
        .env("HOOKGATE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("relay.log"))?)
        .spawn()
        .context("starting the relay")?;
    let relay = Relay(child);
    let pid = relay.0.id();
    let client = reqwest::Client::new();
    wait_until("the relay to listen", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = rss_kib(pid)?;

    // 2. Opening N gates.
    let started = Instant::now();
    for chunk in (1..=gates as u64).collect::<Vec<_>>().chunks(32) {
        let sends = chunk
            .iter()
            .map(|run| send_event(&client, &relay_url, *run));
        for result in futures::future::join_all(sends).await {
            result?;
        }
    }
    let events_sent = started.elapsed();
    let count = |seen: &Shared| seen.lock().map(|s| s.requests.len()).unwrap_or(0);
    wait_until("every gate's webhook", Duration::from_secs(300), || {
        count(&seen) >= gates
    })
    .await?;
    let opened = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let waiting = rss_kib(pid)?;

    // 3. Callback to answer, one gate at a time; and the relay's own callback to poll.
    let mut gate_latency = Vec::with_capacity(LATENCY_ROUNDS);
    let mut poll_latency = Vec::with_capacity(LATENCY_ROUNDS);
    for run in 1..=LATENCY_ROUNDS as u64 {
        let (url, token) = seen
            .lock()
            .map(|s| s.requests[&run].clone())
            .unwrap_or_default();
        let sent = Instant::now();
        call_back(&client, &url, &token).await?;
        wait_until("a gate's answer", Duration::from_secs(30), || {
            seen.lock()
                .map(|s| s.answers.contains_key(&run))
                .unwrap_or(false)
        })
        .await?;
        let answered = seen
            .lock()
            .map(|s| s.answers[&run].0)
            .unwrap_or_else(|_| Instant::now());
        gate_latency.push(answered.duration_since(sent));
        poll_latency.push(relay_round_trip(&client, &relay_url).await?);
    }

    // 4. The rest at once.
    let rest: Vec<(String, String)> = seen
        .lock()
        .map(|s| {
            (LATENCY_ROUNDS as u64 + 1..=gates as u64)
                .map(|run| s.requests[&run].clone())
                .collect()
        })
        .unwrap_or_default();
    let drained_from = Instant::now();
    for chunk in rest.chunks(32) {
        let sends = chunk
            .iter()
            .map(|(url, token)| call_back(&client, url, token));
        for result in futures::future::join_all(sends).await {
            result?;
        }
    }
    wait_until("every answer", Duration::from_secs(300), || {
        seen.lock()
            .map(|s| s.answers.len() >= gates)
            .unwrap_or(false)
    })
    .await?;
    let drained = drained_from.elapsed();
    let approved = seen
        .lock()
        .map(|s| {
            s.answers
                .values()
                .filter(|(_, state)| state == "approved")
                .count()
        })
        .unwrap_or(0);

    gate_latency.sort();
    poll_latency.sort();
    println!("gate-bench: {gates} gates on one relay (SQLite), 2 cores, everything on loopback");
    println!(
        "  relay RSS idle:                       {:.1} MB",
        idle as f64 / 1024.0
    );
    println!(
        "  relay RSS with {gates} gates waiting:    {:.1} MB  ({:.1} KB per gate)",
        waiting as f64 / 1024.0,
        (waiting.saturating_sub(idle)) as f64 / gates as f64
    );
    println!(
        "  opening: {gates} signed events sent in {:.2} s; every webhook sent {:.2} s after the first event ({:.0} gates/s)",
        events_sent.as_secs_f64(),
        opened.as_secs_f64(),
        gates as f64 / opened.as_secs_f64()
    );
    println!(
        "  callback -> answer at GitHub (gate):  p50 {}  p99 {}",
        ms(percentile(&gate_latency, 0.5)),
        ms(percentile(&gate_latency, 0.99))
    );
    println!(
        "  callback -> long poll (baseline):     p50 {}  p99 {}",
        ms(percentile(&poll_latency, 0.5)),
        ms(percentile(&poll_latency, 0.99))
    );
    println!(
        "  draining: {} callbacks at once, all answered in {:.2} s ({:.0} answers/s)",
        gates - LATENCY_ROUNDS,
        drained.as_secs_f64(),
        (gates - LATENCY_ROUNDS) as f64 / drained.as_secs_f64()
    );
    println!("  answers: {approved} approved of {gates}");
    if approved != gates {
        bail!("FAIL: {} gates were not approved", gates - approved);
    }
    drop(relay);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The relay's own path: a slot, a long poll on it, a callback, and the time from the callback
/// to the poll's answer.
async fn relay_round_trip(client: &reqwest::Client, relay: &str) -> anyhow::Result<Duration> {
    let slot: Value = client
        .post(format!("{relay}/v1/slots"))
        .bearer_auth(RELAY_TOKEN)
        .json(&json!({"auth": "bearer", "deadline": 600, "label": "bench"}))
        .send()
        .await?
        .json()
        .await?;
    let id = slot["id"].as_str().context("no slot id")?.to_owned();
    let read_token = slot["readToken"]
        .as_str()
        .context("no read token")?
        .to_owned();
    let token = slot["token"].as_str().context("no token")?.to_owned();
    let poll = {
        let client = client.clone();
        let url = format!("{relay}/v1/slots/{id}?wait=30s");
        tokio::spawn(async move { client.get(url).bearer_auth(read_token).send().await })
    };
    tokio::time::sleep(Duration::from_millis(5)).await;
    let sent = Instant::now();
    call_back(client, &format!("{relay}/v1/callbacks/{id}"), &token).await?;
    let answer = poll.await??;
    let elapsed = sent.elapsed();
    if !answer.status().is_success() {
        bail!("the poll answered {}", answer.status());
    }
    Ok(elapsed)
}
