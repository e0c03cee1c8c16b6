//! The fault suite: what breaks around a gate, done to the real binaries, with the figures each
//! test prints (run `cargo test --test it faults:: -- --nocapture` to see them):
//! - the relay killed with SIGKILL while callbacks arrive (SQLite and PostgreSQL): every callback
//!   answered 202 is delivered after the restart;
//! - the relay unreachable for 60 seconds while a gate waits: the gate resumes, and its verdict is
//!   the one the service sent;
//! - hostile callback bodies (100 MB, chunked without end, a slow drip, invalid UTF-8, deep JSON
//!   nesting, bad signatures and timestamps): a clear 4xx each, nothing stored, the relay's memory
//!   bounded, and the relay still takes a good callback afterwards.
//!
//! GitHub answering a dispatch with 502 is in `github.rs`
//! (`hookgate_run_never_dispatches_twice_after_a_502`: not sent again, since it may have been
//! queued), and with a secondary limit (403) or 429 in `engine.rs`
//! (`a_rate_limited_dispatch_is_sent_again_after_retry_after`,
//! `a_rate_limited_dispatch_is_sent_again_even_without_retry_count`: sent again after the wait
//! GitHub asks for, since GitHub refused it): each dispatch is queued by GitHub once.

// The suite prints its figures (callbacks sent, acknowledged, delivered, lost; times; memory).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::relay::{RelayProcess, Schema, post, token};
use crate::support::{Reply, TestServer};

/// Slots written to during the kill run: each takes at most 100 callbacks.
const KILL_SLOTS: usize = 200;
/// Connections sending callbacks at once during the kill run.
const KILL_SENDERS: usize = 16;

/// Sends callbacks from several connections, kills the relay with SIGKILL while they arrive,
/// restarts it on the same store and looks for every callback that was answered 202.
async fn every_acknowledged_callback_survives_kill_9(store: &str, name: &str) {
    let mut relay = RelayProcess::start(store);
    let mut slots = Vec::with_capacity(KILL_SLOTS);
    for _ in 0..KILL_SLOTS {
        slots.push(relay.create("bearer", 600).await);
    }
    let slots = Arc::new(slots);
    let sent = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let url = relay.url();
    let mut senders = Vec::new();
    for sender in 0..KILL_SENDERS {
        let (slots, sent, stop, url) = (slots.clone(), sent.clone(), stop.clone(), url.clone());
        senders.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut acknowledged = Vec::new();
            for n in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let index = (n * KILL_SENDERS + sender) % KILL_SLOTS;
                let slot = &slots[index];
                let body = format!(r#"{{"success": true, "mdMessage": "{sender}-{n}"}}"#);
                sent.fetch_add(1, Ordering::Relaxed);
                let answer = client
                    .post(format!(
                        "{url}/v1/callbacks/{}",
                        slot["id"].as_str().unwrap()
                    ))
                    .bearer_auth(token(slot).unwrap())
                    .body(body.clone())
                    .send()
                    .await;
                match answer {
                    Ok(response) if response.status() == StatusCode::ACCEPTED => {
                        acknowledged.push((index, body));
                    }
                    Ok(_) => {}
                    // The relay is gone.
                    Err(_) => break,
                }
            }
            acknowledged
        }));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    relay.kill_9();
    stop.store(true, Ordering::Relaxed);
    let mut acknowledged = Vec::new();
    for sender in senders {
        acknowledged.extend(sender.await.unwrap());
    }

    let restarted = RelayProcess::start(store);
    let mut stored: Vec<std::collections::HashSet<Vec<u8>>> = Vec::with_capacity(KILL_SLOTS);
    for slot in slots.iter() {
        let answer = restarted.read(slot, "0").await;
        stored.push(
            answer["callbacks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|callback| {
                    base64::Engine::decode(
                        &base64::engine::general_purpose::STANDARD,
                        callback["bodyBase64"].as_str().unwrap(),
                    )
                    .unwrap()
                })
                .collect(),
        );
    }
    let delivered = acknowledged
        .iter()
        .filter(|(index, body)| stored[*index].contains(body.as_bytes()))
        .count();
    let lost = acknowledged.len() - delivered;
    println!(
        "kill -9 on {name}: {} callbacks sent, {} answered 202, {delivered} of those delivered after the restart, {lost} lost",
        sent.load(Ordering::Relaxed),
        acknowledged.len()
    );
    assert!(
        acknowledged.len() > 100,
        "too few callbacks before the kill to mean anything: {}",
        acknowledged.len()
    );
    assert_eq!(lost, 0, "callbacks answered 202 were lost on {name}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_kill_9_while_callbacks_arrive_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite:{}", dir.path().join("relay.sqlite").display());
    every_acknowledged_callback_survives_kill_9(&store, "SQLite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_kill_9_while_callbacks_arrive_on_postgres() {
    let schema = Schema::create().await;
    every_acknowledged_callback_survives_kill_9(&schema.store_url(), "PostgreSQL").await;
    schema.drop_now().await;
}

/// How long the relay is away while the gate waits.
const OUTAGE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_a_gate_outlasts_a_relay_that_is_away_for_a_minute() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite:{}", dir.path().join("relay.sqlite").display());
    let mut relay = RelayProcess::start(&store);
    let address = relay.address;
    let service = TestServer::start(|_, _| Reply::status(200));
    let file = dir.path().join("deploy.yml");
    std::fs::write(
        &file,
        format!(
            "targets:\n  staging:\n    constraints:\n      beforeDeployment:\n        - runWebhook:\n            name: migrate\n\
             webhooks:\n  - name: migrate\n    uriTemplate: {}/migrate\n    timeout: 5m\n    bodyTemplate:\n      inline: '{{\"callbackUri\": \"{{{{ callback.uri }}}}\", \"token\": \"{{{{ callback.token }}}}\"}}'\n",
            service.url
        ),
    )
    .unwrap();
    let mut run = hookgate_async()
        .arg("run")
        .arg("--file")
        .arg(&file)
        .args(["--target", "staging", "--phase", "before-deployment"])
        .args([
            "--relay",
            &relay.url(),
            "--relay-token",
            crate::relay::RELAY_TOKEN,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    assert!(
        service.wait_for(Duration::from_secs(30), |seen| !seen.is_empty()),
        "the gate never called the service"
    );
    let called = service.requests()[0].json();
    // The gate is waiting on the relay now; the relay goes away for a minute.
    tokio::time::sleep(Duration::from_secs(1)).await;
    relay.kill_9();
    let away = Instant::now();
    tokio::time::sleep(OUTAGE).await;
    let back = RelayProcess::start_at(&store, &address.to_string());
    let verdict = r#"{"success": false, "mdMessage": "the schema check failed after the outage"}"#;
    let (status, _) = post(
        &back.callback_url(&json!({"callbackUrl": called["callbackUri"]})),
        called["token"].as_str(),
        verdict,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let finished = tokio::time::timeout(Duration::from_secs(90), async {
        let mut out = String::new();
        let mut err = String::new();
        run.stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .await
            .unwrap();
        run.stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .await
            .unwrap();
        (run.wait().await.unwrap(), format!("{out}{err}"))
    })
    .await
    .expect("the gate finished after the relay came back");
    let (status, output) = finished;
    let relay_lines = output
        .lines()
        .filter(|line| line.to_lowercase().contains("relay"))
        .count();
    println!(
        "relay away for {:.0} s while the gate waited: the gate ended {:.0} s after the outage began with exit code {:?}, {relay_lines} log lines about the relay",
        OUTAGE.as_secs_f64(),
        away.elapsed().as_secs_f64(),
        status.code()
    );
    assert_eq!(status.code(), Some(1), "the service said no: {output}");
    assert!(
        output.contains("the schema check failed after the outage"),
        "{output}"
    );
    assert!(relay_lines < 40, "the outage flooded the log: {output}");
}

/// The `hookgate` binary as a child the test can wait on while it does other things, with the
/// machine's GitHub Actions environment removed, as `common::hookgate` does.
fn hookgate_async() -> tokio::process::Command {
    let mut command = tokio::process::Command::new(assert_cmd::cargo::cargo_bin!("hookgate"));
    for key in crate::common::runner_variables() {
        command.env_remove(key);
    }
    command
}

/// The first line of the relay's answer on `stream` (`HTTP/1.1 413 ...`), waiting up to `limit`.
async fn status_line(stream: &mut TcpStream, limit: Duration) -> String {
    let mut received = Vec::new();
    let mut chunk = [0u8; 1024];
    let read = tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&chunk[..n]),
            }
            if received.windows(2).any(|w| w == b"\r\n") {
                break;
            }
        }
    })
    .await;
    if read.is_err() {
        return "no answer in time".to_owned();
    }
    String::from_utf8_lossy(&received)
        .lines()
        .next()
        .unwrap_or("no answer")
        .to_owned()
}

/// The status code in a status line.
fn code_of(line: &str) -> u16 {
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// The relay's resident memory in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap()
}

/// Sends a request head for a callback into `slot`, then `body_bytes` of body in 64 KiB writes
/// while the relay reads; returns the status line and how many body bytes the relay took.
async fn send_huge(
    relay: &RelayProcess,
    slot: &Value,
    head: &str,
    body_bytes: usize,
) -> (String, usize) {
    let mut stream = TcpStream::connect(relay.address).await.unwrap();
    let request = format!(
        "POST /v1/callbacks/{} HTTP/1.1\r\nhost: relay\r\nauthorization: Bearer {}\r\n{head}\r\n",
        slot["id"].as_str().unwrap(),
        token(slot).unwrap()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let chunked = head.contains("chunked");
    let piece = vec![b'x'; 64 * 1024];
    let mut written = 0;
    while written < body_bytes {
        let result = if chunked {
            let mut framed = format!("{:x}\r\n", piece.len()).into_bytes();
            framed.extend_from_slice(&piece);
            framed.extend_from_slice(b"\r\n");
            stream.write_all(&framed).await
        } else {
            stream.write_all(&piece).await
        };
        if result.is_err() {
            break;
        }
        written += piece.len();
    }
    (
        status_line(&mut stream, Duration::from_secs(5)).await,
        written,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_hostile_callback_bodies_get_a_4xx_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&format!(
        "sqlite:{}",
        dir.path().join("relay.sqlite").display()
    ));
    let bearer = relay.create("bearer", 600).await;
    let standard = relay.create("hmac-standard", 600).await;
    let github = relay.create("hmac-github", 600).await;
    let before_kib = rss_kib(relay.pid());
    let mut figures = Vec::new();

    // 100 MB declared (refused before the body is read) and 100 MB chunked (refused once the
    // limit is passed).
    for (how, head) in [
        ("with content-length", "content-length: 100000000\r\n"),
        ("chunked", "transfer-encoding: chunked\r\n"),
    ] {
        let (line, taken) = send_huge(&relay, &bearer, head, 100_000_000).await;
        figures.push(format!(
            "100 MB {how}: {line} after {} KiB sent",
            taken / 1024
        ));
        assert_eq!(code_of(&line), 413, "{how}: {line}");
    }

    // Chunked without an end, and a slow drip: both at once, each answered 408.
    let endless = async {
        let mut stream = TcpStream::connect(relay.address).await.unwrap();
        let head = format!(
            "POST /v1/callbacks/{} HTTP/1.1\r\nhost: relay\r\nauthorization: Bearer {}\r\ntransfer-encoding: chunked\r\n\r\n5\r\n{{\"suc\r\n",
            bearer["id"].as_str().unwrap(),
            token(&bearer).unwrap()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let started = Instant::now();
        let line = status_line(&mut stream, Duration::from_secs(30)).await;
        (line, started.elapsed())
    };
    let drip = async {
        let mut stream = TcpStream::connect(relay.address).await.unwrap();
        let body = br#"{"success": true, "mdMessage": "one byte at a time, forever"}"#;
        let head = format!(
            "POST /v1/callbacks/{} HTTP/1.1\r\nhost: relay\r\nauthorization: Bearer {}\r\ncontent-length: {}\r\n\r\n",
            bearer["id"].as_str().unwrap(),
            token(&bearer).unwrap(),
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let started = Instant::now();
        let (mut reader, mut writer) = stream.into_split();
        let dripping = tokio::spawn(async move {
            for byte in body {
                if writer.write_all(&[*byte]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        let mut received = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(30), reader.read_buf(&mut received)).await;
        dripping.abort();
        let line = String::from_utf8_lossy(&received)
            .lines()
            .next()
            .unwrap_or("no answer")
            .to_owned();
        (line, started.elapsed())
    };
    let ((endless_line, endless_after), (drip_line, drip_after)) = tokio::join!(endless, drip);
    figures.push(format!(
        "chunked without an end: {endless_line} after {:.1} s",
        endless_after.as_secs_f64()
    ));
    figures.push(format!(
        "a byte every 500 ms: {drip_line} after {:.1} s",
        drip_after.as_secs_f64()
    ));
    assert_eq!(code_of(&endless_line), 408, "{endless_line}");
    assert_eq!(code_of(&drip_line), 408, "{drip_line}");

    let bearer_url = relay.callback_url(&bearer);
    let send = |url: String, headers: Vec<(&'static str, String)>, body: Vec<u8>| async move {
        let mut request = reqwest::Client::new().post(url).body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send().await.unwrap().status().as_u16()
    };
    let auth = vec![(
        "authorization",
        format!("Bearer {}", token(&bearer).unwrap()),
    )];
    let mut bodies: Vec<(&str, Vec<u8>)> = vec![
        (
            "invalid UTF-8",
            b"{\"success\": true, \"mdMessage\": \"\xff\xfe\"}".to_vec(),
        ),
        ("JSON nested 60,000 deep", {
            let mut nested = b"{\"success\": true, \"x\": ".to_vec();
            nested.extend(std::iter::repeat_n(b'[', 60_000));
            nested
        }),
    ];
    for (what, body) in bodies.drain(..) {
        let status = send(bearer_url.clone(), auth.clone(), body).await;
        figures.push(format!("{what}: {status}"));
        assert_eq!(status, 400, "{what}");
    }

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let verdict = br#"{"success": true}"#.to_vec();
    let standard_url = relay.callback_url(&standard);
    let standard_cases: Vec<(&str, String, String)> = vec![
        (
            "a signature that is not base64",
            now.to_string(),
            "v1,@@@not base64@@@".to_owned(),
        ),
        (
            "a timestamp that is not a number",
            "yesterday".to_owned(),
            "v1,AAAA".to_owned(),
        ),
        (
            "a timestamp ten minutes ahead",
            (now + 600).to_string(),
            "v1,AAAA".to_owned(),
        ),
        (
            "a timestamp an hour old",
            (now - 3600).to_string(),
            "v1,AAAA".to_owned(),
        ),
        (
            "a timestamp of 40 digits",
            "9".repeat(40),
            "v1,AAAA".to_owned(),
        ),
    ];
    for (what, timestamp, signature) in standard_cases {
        let headers = vec![
            ("webhook-id", "msg_faults".to_owned()),
            ("webhook-timestamp", timestamp),
            ("webhook-signature", signature),
        ];
        let status = send(standard_url.clone(), headers, verdict.clone()).await;
        figures.push(format!("Standard Webhooks, {what}: {status}"));
        assert_eq!(status, 401, "{what}");
    }
    let status = send(
        relay.callback_url(&github),
        vec![("x-hub-signature-256", "sha256=not-hex".to_owned())],
        verdict.clone(),
    )
    .await;
    figures.push(format!(
        "GitHub form, a signature that is not hex: {status}"
    ));
    assert_eq!(status, 401);

    // Nothing of the above was stored; the relay takes a good callback; its memory stayed bounded.
    for slot in [&bearer, &standard, &github] {
        assert_eq!(relay.read(slot, "0").await["callbacks"], json!([]));
    }
    let (status, _) = post(&bearer_url, token(&bearer), r#"{"success": true}"#).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        relay.read(&bearer, "0").await["callbacks"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let after_kib = rss_kib(relay.pid());
    figures.push(format!(
        "relay RSS {:.1} MB before, {:.1} MB after (limit: 20 MB more)",
        before_kib as f64 / 1024.0,
        after_kib as f64 / 1024.0
    ));
    println!("hostile callbacks:\n  {}", figures.join("\n  "));
    assert!(after_kib < before_kib + 20 * 1024, "{figures:?}");
}
