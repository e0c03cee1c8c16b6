//! `hookgate relay` as a process: started from the real binary on a free port, with a real
//! SQLite file or a fresh schema on the machine's PostgreSQL (`HOOKGATE_TEST_POSTGRES`, default
//! `postgres://postgres@127.0.0.1:5432/test`). Covers the status codes end to end, a kill -9 right
//! after a 202 (the callback must survive the restart), two replicas on one PostgreSQL database
//! waking each other's waiters, and a graceful SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;

pub(crate) const RELAY_TOKEN: &str = "relay-token-for-binary-tests-0123";
/// The relay's public name; requests go to the real address, which changes across restarts.
pub(crate) const PUBLIC_URL: &str = "http://relay.hookgate.test";

/// A running `hookgate relay`; killed when dropped.
pub(crate) struct RelayProcess {
    child: Child,
    pub(crate) address: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl RelayProcess {
    pub(crate) fn start(store: &str) -> Self {
        Self::start_at(store, "127.0.0.1:0")
    }

    /// Starts the relay on `store`, listening on `listen` (`127.0.0.1:0` for a free port).
    pub(crate) fn start_at(store: &str, listen: &str) -> Self {
        Self::start_with(store, listen, &[])
    }

    /// Starts the relay on `store`, listening on `listen`, with more arguments.
    pub(crate) fn start_with(store: &str, listen: &str, extra: &[String]) -> Self {
        let mut command = Command::new(assert_cmd::cargo::cargo_bin!("hookgate"));
        for key in crate::common::runner_variables() {
            command.env_remove(key);
        }
        let mut child = command
            .args(["relay", "--listen", listen, "--public-url", PUBLIC_URL])
            .args(["--store", store, "--relay-token", RELAY_TOKEN])
            .args(extra)
            .env("HOOKGATE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the hookgate binary starts");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (found, address) = std::sync::mpsc::channel();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("relay listening")
                    && let Some(rest) = line.split("address=").nth(1)
                {
                    let address = rest.split_whitespace().next().unwrap_or_default();
                    let _ = found.send(address.parse::<SocketAddr>());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let address = match address.recv_timeout(Duration::from_secs(60)) {
            Ok(address) => address.unwrap(),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "the relay did not start:\n{}",
                    log.lock().unwrap().join("\n")
                );
            }
        };
        Self {
            child,
            address,
            log,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The slot's callback URL, pointed at this process.
    pub(crate) fn callback_url(&self, slot: &Value) -> String {
        slot["callbackUrl"]
            .as_str()
            .unwrap()
            .replace(PUBLIC_URL, &self.url())
    }

    pub(crate) async fn create(&self, auth: &str, deadline: u64) -> Value {
        let response = reqwest::Client::new()
            .post(format!("{}/v1/slots", self.url()))
            .bearer_auth(RELAY_TOKEN)
            .json(&json!({"auth": auth, "deadline": deadline, "label": "it"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.unwrap()
    }

    pub(crate) async fn read(&self, slot: &Value, wait: &str) -> Value {
        let response = reqwest::Client::new()
            .get(format!(
                "{}/v1/slots/{}?wait={wait}",
                self.url(),
                slot["id"].as_str().unwrap()
            ))
            .bearer_auth(slot["readToken"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn kill_9(&mut self) {
        // `Child::kill` is SIGKILL on Unix: no shutdown code runs.
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sends SIGTERM and waits for the process to exit; answers whether it exited 0.
    pub(crate) fn terminate(&mut self) -> bool {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        self.child.wait().unwrap().success()
    }

    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) async fn post(url: &str, token: Option<&str>, body: &str) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new().post(url).body(body.to_owned());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub(crate) fn token(slot: &Value) -> Option<&str> {
    slot["token"].as_str()
}

fn postgres_base() -> String {
    std::env::var("HOOKGATE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A fresh schema on the test server, dropped when the guard goes.
pub(crate) struct Schema {
    name: String,
}

impl Schema {
    pub(crate) async fn create() -> Self {
        let name = format!("hg_it_{}", uuid_like());
        let mut connection = sqlx::PgConnection::connect(&postgres_base()).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&mut connection)
            .await
            .unwrap();
        Self { name }
    }

    pub(crate) fn store_url(&self) -> String {
        format!(
            "{}?options=-c%20search_path%3D{}",
            postgres_base(),
            self.name
        )
    }

    pub(crate) async fn drop_now(self) {
        let mut connection = sqlx::PgConnection::connect(&postgres_base()).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA {} CASCADE",
            self.name
        )))
        .execute(&mut connection)
        .await
        .unwrap();
    }
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{nanos:x}{:x}", std::process::id())
}

#[tokio::test]
async fn the_relay_binary_answers_every_status() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&format!(
        "sqlite:{}",
        dir.path().join("relay.sqlite").display()
    ));
    let slot = relay.create("bearer", 600).await;
    let other = relay.create("bearer", 600).await;
    let url = relay.callback_url(&slot);
    let verdict = r#"{"success": true}"#;

    assert_eq!(post(&url, None, verdict).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        post(&url, Some("not.a.token"), verdict).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post(&url, token(&other), verdict).await.0,
        StatusCode::UNAUTHORIZED,
        "a token for another slot"
    );
    let unknown = format!(
        "{}/v1/callbacks/ffffffffffffffffffffffffffffffff",
        relay.url()
    );
    assert_eq!(
        post(&unknown, token(&slot), verdict).await.0,
        StatusCode::NOT_FOUND
    );
    let big = format!(r#"{{"success": true, "pad": "{}"}}"#, "x".repeat(70 * 1024));
    assert_eq!(
        post(&url, token(&slot), &big).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(
        post(&url, token(&slot), "{\"success\": 1}").await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(relay.read(&slot, "0").await["callbacks"], json!([]));

    let first = post(&url, token(&slot), verdict).await;
    assert_eq!(first.0, StatusCode::ACCEPTED);
    assert_eq!(post(&url, token(&slot), verdict).await, first, "a replay");
    assert_eq!(
        relay.read(&slot, "0").await["callbacks"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let late = relay.create("bearer", 1).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        post(&relay.callback_url(&late), token(&late), verdict)
            .await
            .0,
        StatusCode::GONE
    );
    let log = relay.log();
    assert!(!log.contains(token(&slot).unwrap()), "a token was logged");
    assert!(!log.contains(RELAY_TOKEN), "the relay token was logged");
}

async fn a_stored_callback_survives_kill_9(store: &str) {
    let mut relay = RelayProcess::start(store);
    let slot = relay.create("bearer", 600).await;
    let body = r#"{"success": false, "mdMessage": "integration tests failed"}"#;
    let (status, _) = post(&relay.callback_url(&slot), token(&slot), body).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    relay.kill_9();

    // Same store, new process (new port): the slot, its callback and the signing key are there,
    // so the read token issued before the crash still works.
    let restarted = RelayProcess::start(store);
    let answer = restarted.read(&slot, "0").await;
    let callbacks = answer["callbacks"].as_array().unwrap();
    assert_eq!(callbacks.len(), 1, "{answer}");
    let stored = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        callbacks[0]["bodyBase64"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(stored, body.as_bytes());
    // The slot token still works on the new process too.
    let (status, accepted) = post(
        &restarted.callback_url(&slot),
        token(&slot),
        r#"{"success": true}"#,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(accepted["sequence"], 2);
}

#[tokio::test]
async fn a_stored_callback_survives_kill_9_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    a_stored_callback_survives_kill_9(&format!(
        "sqlite:{}",
        dir.path().join("relay.sqlite").display()
    ))
    .await;
}

#[tokio::test]
async fn a_stored_callback_survives_kill_9_on_postgres() {
    let schema = Schema::create().await;
    a_stored_callback_survives_kill_9(&schema.store_url()).await;
    schema.drop_now().await;
}

#[tokio::test]
async fn a_callback_on_one_replica_wakes_a_waiter_on_the_other() {
    let schema = Schema::create().await;
    let replica_a = RelayProcess::start(&schema.store_url());
    let replica_b = RelayProcess::start(&schema.store_url());

    // The slot is created on B and waited on at B; the callback goes to A.
    let slot = replica_b.create("bearer", 600).await;
    let waiter = {
        let url = format!(
            "{}/v1/slots/{}?wait=30s",
            replica_b.url(),
            slot["id"].as_str().unwrap()
        );
        let read_token = slot["readToken"].as_str().unwrap().to_owned();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let answer: Value = reqwest::Client::new()
                .get(url)
                .bearer_auth(read_token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (answer, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiter.is_finished(), "B waits while there is nothing");
    // B's slot token is accepted by A: both share the signing key kept in the database.
    let (status, _) = post(
        &replica_a.callback_url(&slot),
        token(&slot),
        r#"{"success": true, "mdMessage": "via A"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (answer, waited) = tokio::time::timeout(Duration::from_secs(25), waiter)
        .await
        .expect("the waiter on B was woken")
        .unwrap();
    assert!(
        waited < Duration::from_secs(30),
        "woken, not timed out: {waited:?}"
    );
    let callbacks = answer["callbacks"].as_array().unwrap();
    assert_eq!(callbacks.len(), 1, "{answer}");
    assert_eq!(callbacks[0]["sequence"], 1);
    drop(replica_a);
    drop(replica_b);
    schema.drop_now().await;
}

#[tokio::test]
async fn sigterm_answers_waiters_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut relay = RelayProcess::start(&format!(
        "sqlite:{}",
        dir.path().join("relay.sqlite").display()
    ));
    let slot = relay.create("hmac-github", 600).await;
    let waiter = {
        let url = format!(
            "{}/v1/slots/{}?wait=60s",
            relay.url(),
            slot["id"].as_str().unwrap()
        );
        let read_token = slot["readToken"].as_str().unwrap().to_owned();
        tokio::spawn(async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(read_token)
                .send()
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed = Command::new("kill")
        .args(["-TERM", &relay.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let response = tokio::time::timeout(Duration::from_secs(20), waiter)
        .await
        .expect("the waiter was answered")
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let status = tokio::task::spawn_blocking(move || {
        let status = relay.child.wait().unwrap();
        (status, relay.log())
    })
    .await
    .unwrap();
    assert!(status.0.success(), "exit {:?}\n{}", status.0, status.1);
    assert!(status.1.contains("relay stopped"), "{}", status.1);
}

#[test]
fn the_relay_refuses_to_start_when_nobody_could_create_slots() {
    let output = crate::common::hookgate()
        .args([
            "relay",
            "--listen",
            "127.0.0.1:0",
            "--store",
            "sqlite::memory:",
        ])
        .env_remove("HOOKGATE_RELAY_TOKENS")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--relay-token"), "{stderr}");
}
