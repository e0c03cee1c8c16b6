//! The relay's HTTP API, served in-process on a real socket (127.0.0.1, a free port) with a real
//! SQLite file: every status a callback can get, what is stored, long polls, the client's error
//! classes, OIDC slot creation against a stand-in issuer, metrics and graceful shutdown.
//! The real binary (restarts, kill -9, replicas on PostgreSQL) is tested in the workspace's
//! integration tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hookgate_auth::{Scheme, SlotTokens};
use hookgate_protocol::{CallbackAuth, ClientError, CreateSlot, Deadline, RelayClient};
use hookgate_relay::oidc::OidcConfig;
use hookgate_relay::{EmbeddedRelay, RelayConfig, serve, store};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const RELAY_TOKEN: &str = "relay-token-for-tests-0123456789";
const SIGNING_KEY: &[u8] = b"signing-key-for-tests-0123456789abcdef";

struct TestRelay {
    url: String,
    stop: CancellationToken,
    task: JoinHandle<Result<(), hookgate_relay::RelayError>>,
    _dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl TestRelay {
    async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    async fn start_with(adjust: impl FnOnce(&mut RelayConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let mut config = RelayConfig::new(format!(
            "sqlite:{}",
            dir.path().join("relay.sqlite").display()
        ));
        config.public_url = Some(url.clone());
        config.relay_tokens = vec![RELAY_TOKEN.to_owned()];
        config.signing_key = Some(SIGNING_KEY.to_vec());
        config.max_callbacks_per_slot = 5;
        config.max_body = 1024;
        adjust(&mut config);
        let store = store::open(&config.store).await.unwrap();
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let task = tokio::spawn(serve(config, store, listener, async move {
            stopped.cancelled().await;
        }));
        Self {
            url,
            stop,
            task,
            _dir: dir,
            http: reqwest::Client::new(),
        }
    }

    async fn create(&self, auth: &str, deadline: Value) -> Value {
        let response = self
            .http
            .post(format!("{}/v1/slots", self.url))
            .bearer_auth(RELAY_TOKEN)
            .json(&json!({"auth": auth, "deadline": deadline, "label": "deploy gate"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.unwrap()
    }

    async fn read(&self, slot: &Value, after: u64, wait: &str) -> Value {
        read(&self.url, slot, after, wait).await
    }

    async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// Reads a slot with its read token.
async fn read(relay_url: &str, slot: &Value, after: u64, wait: &str) -> Value {
    let response = reqwest::Client::new()
        .get(format!(
            "{relay_url}/v1/slots/{}?after={after}&wait={wait}",
            slot["id"].as_str().unwrap()
        ))
        .bearer_auth(slot["readToken"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// Sends `body` in chunks with no Content-Length, over a plain socket; returns the status line.
async fn post_chunked(url: &str, token: &str, body: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut socket = tokio::net::TcpStream::connect(host).await.unwrap();
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {token}\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    )
    .into_bytes();
    for chunk in body.chunks(100) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    // The relay may answer 413 and close before reading everything.
    let _ = socket.write_all(&request).await;
    let mut answer = Vec::new();
    let _ = socket.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

async fn post(
    url: &str,
    headers: &[(&str, String)],
    body: impl Into<reqwest::Body>,
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new().post(url).body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn bearer(slot: &Value) -> Vec<(&'static str, String)> {
    vec![(
        "authorization",
        format!("Bearer {}", slot["token"].as_str().unwrap()),
    )]
}

fn callback_url(slot: &Value) -> String {
    slot["callbackUrl"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn creating_a_slot_needs_a_relay_token_and_a_sane_request() {
    let relay = TestRelay::start().await;
    let url = format!("{}/v1/slots", relay.url);
    let body = json!({"auth": "bearer", "deadline": 600}).to_string();
    let (status, error) = post(&url, &[], body.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error["code"], "unauthorized");
    assert!(error["detail"].as_str().unwrap().contains("Bearer"));
    let (status, _) = post(
        &url,
        &[("authorization", "Bearer not-the-token-at-all".to_owned())],
        body,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let auth = [("authorization", format!("Bearer {RELAY_TOKEN}"))];
    for (bad, code) in [
        (
            json!({"auth": "basic", "deadline": 60}),
            "invalid_slot_request",
        ),
        (json!({"auth": "bearer"}), "invalid_slot_request"),
        (
            json!({"auth": "bearer", "deadline": "tomorrow"}),
            "invalid_deadline",
        ),
        (
            json!({"auth": "bearer", "deadline": "2001-01-01T00:00:00Z"}),
            "invalid_deadline",
        ),
    ] {
        let (status, error) = post(&url, &auth, bad.to_string()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(error["code"], code, "{bad}");
    }

    let slot = relay.create("bearer", json!(600)).await;
    let id = slot["id"].as_str().unwrap();
    assert_eq!(id.len(), 32);
    assert_eq!(
        slot["callbackUrl"],
        format!("{}/v1/callbacks/{id}", relay.url)
    );
    assert!(slot["token"].as_str().unwrap().split('.').count() == 3);
    let hmac = relay
        .create("hmac-github", json!("2099-01-01T00:00:00Z"))
        .await;
    assert!(hmac.get("token").is_none(), "HMAC slots have no token");
    // Far deadlines are cut to the maximum lifetime (24 h by default).
    let granted = humantime::parse_rfc3339_weak(hmac["deadline"].as_str().unwrap()).unwrap();
    assert!(granted <= SystemTime::now() + Duration::from_secs(24 * 3600));
    assert!(granted > SystemTime::now() + Duration::from_secs(23 * 3600));
}

#[tokio::test]
async fn bearer_callbacks_need_the_slots_own_unexpired_token() {
    let relay = TestRelay::start().await;
    let slot = relay.create("bearer", json!(600)).await;
    let other = relay.create("bearer", json!(600)).await;
    let url = callback_url(&slot);
    let verdict = r#"{"success": true, "mdMessage": "all good"}"#;

    let (status, error) = post(&url, &[], verdict).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error["code"], "unauthorized");
    let (status, _) = post(
        &url,
        &[("authorization", "Bearer abc.def.ghi".to_owned())],
        verdict,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, error) = post(&url, &bearer(&other), verdict).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a token for another slot");
    assert!(
        error["detail"].as_str().unwrap().contains("slot"),
        "{error}"
    );
    // A token for this slot signed with the relay's key, but expired a minute ago.
    let id = slot["id"].as_str().unwrap();
    let now = SystemTime::now();
    let expired = SlotTokens::new(SIGNING_KEY)
        .unwrap()
        .issue(
            id,
            &relay.url,
            now - Duration::from_secs(600),
            now - Duration::from_secs(60),
        )
        .unwrap();
    let (status, error) = post(
        &url,
        &[("authorization", format!("Bearer {expired}"))],
        verdict,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "an expired token");
    assert!(
        error["detail"].as_str().unwrap().contains("expired"),
        "{error}"
    );
    // The read token cannot stand in for the callback token.
    let (status, _) = post(
        &url,
        &[(
            "authorization",
            format!("Bearer {}", slot["readToken"].as_str().unwrap()),
        )],
        verdict,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Nothing was stored by any of these.
    assert_eq!(relay.read(&slot, 0, "0").await["callbacks"], json!([]));

    let (status, accepted) = post(&url, &bearer(&slot), verdict).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(accepted, json!({"slot": id, "sequence": 1}));
    // Armory's examples append /callback to the URL.
    let (status, accepted) = post(
        &format!("{url}/callback"),
        &bearer(&slot),
        r#"{"success": false}"#,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(accepted["sequence"], 2);
}

#[tokio::test]
async fn callbacks_are_stored_untouched_and_repeats_once() {
    let relay = TestRelay::start().await;
    let slot = relay.create("bearer", json!(600)).await;
    let url = callback_url(&slot);
    let raw = "{ \"success\" : true,\n  \"mdMessage\": \"d\\u00e9ploy\u{e9} ok\" }  ";
    let mut headers = bearer(&slot);
    headers.push(("x-request-id", "r-1".to_owned()));
    headers.push(("content-type", "application/json".to_owned()));
    let (first_status, first) = post(&url, &headers, raw).await;
    let (again_status, again) = post(&url, &headers, raw).await;
    assert_eq!(first_status, StatusCode::ACCEPTED);
    assert_eq!((again_status, &again), (first_status, &first));

    let read = relay.read(&slot, 0, "0").await;
    let callbacks = read["callbacks"].as_array().unwrap();
    assert_eq!(callbacks.len(), 1, "the repeat was stored once: {read}");
    let stored = &callbacks[0];
    assert_eq!(stored["sequence"], 1);
    let body = base64::engine::general_purpose::STANDARD
        .decode(stored["bodyBase64"].as_str().unwrap())
        .unwrap();
    assert_eq!(body, raw.as_bytes());
    let headers: Vec<(String, String)> = serde_json::from_value(stored["headers"].clone()).unwrap();
    assert!(headers.contains(&("x-request-id".to_owned(), "r-1".to_owned())));
    assert!(
        headers.iter().all(|(name, _)| name != "authorization"),
        "credentials are never stored: {headers:?}"
    );
    assert!(humantime::parse_rfc3339_weak(stored["receivedAt"].as_str().unwrap()).is_ok());
    let metrics = relay.metrics().await;
    assert!(
        metrics.contains("hookgate_relay_callbacks_total{outcome=\"duplicate\",status=\"202\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn unknown_late_oversized_and_malformed_callbacks_are_refused_and_change_nothing() {
    let relay = TestRelay::start().await;
    let slot = relay.create("bearer", json!(600)).await;
    let url = callback_url(&slot);

    let (status, error) = post(
        &format!(
            "{}/v1/callbacks/{}",
            relay.url, "0123456789abcdef0123456789abcdef"
        ),
        &bearer(&slot),
        r#"{"success": true}"#,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error["code"], "slot_not_found");
    let (status, _) = post(
        &format!("{}/v1/callbacks/not-an-id", relay.url),
        &[],
        r#"{"success": true}"#,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let big = format!(
        r#"{{"success": true, "mdMessage": "{}"}}"#,
        "x".repeat(2000)
    );
    let (status, error) = post(&url, &bearer(&slot), big.clone()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error["code"], "body_too_large");
    // Without a Content-Length (chunked), the limit holds while reading.
    let status_line = post_chunked(&url, slot["token"].as_str().unwrap(), big.as_bytes()).await;
    assert!(status_line.contains(" 413 "), "{status_line}");

    for malformed in [
        "not json",
        r#"{"success": "yes"}"#,
        r#"{"mdMessage": "no verdict"}"#,
        r#"{"final": "no", "mdMessage": "progress?"}"#,
        r#"{"success": true, "outputs": ["a"]}"#,
        "",
    ] {
        let (status, error) = post(&url, &bearer(&slot), malformed).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{malformed:?}");
        assert_eq!(error["code"], "invalid_body");
    }
    assert_eq!(relay.read(&slot, 0, "0").await["callbacks"], json!([]));
    // Progress is taken and stored like a verdict; the run tells them apart.
    let (status, _) = post(
        &url,
        &bearer(&slot),
        r#"{"final": false, "mdMessage": "2 of 5", "outputs": {"stage": "e2e"}}"#,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        relay.read(&slot, 0, "0").await["callbacks"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    let late = relay.create("bearer", json!(1)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, error) = post(&callback_url(&late), &bearer(&late), r#"{"success": true}"#).await;
    assert_eq!(status, StatusCode::GONE);
    assert_eq!(error["code"], "past_deadline");
    assert_eq!(relay.read(&late, 0, "0").await["callbacks"], json!([]));
}

#[tokio::test]
async fn slots_hold_a_bounded_number_of_callbacks() {
    let relay = TestRelay::start().await;
    let slot = relay.create("bearer", json!(600)).await;
    for n in 0..5 {
        let (status, _) = post(
            &callback_url(&slot),
            &bearer(&slot),
            format!(r#"{{"success": true, "n": {n}}}"#),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    let (status, error) = post(
        &callback_url(&slot),
        &bearer(&slot),
        r#"{"success": true, "n": 6}"#,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error["code"], "slot_full");
    assert!(error["detail"].as_str().unwrap().contains('5'));
    assert_eq!(
        relay.read(&slot, 0, "0").await["callbacks"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
}

#[tokio::test]
async fn hmac_slots_need_well_formed_fresh_signature_headers() {
    let relay = TestRelay::start().await;
    let github = relay.create("hmac-github", json!(600)).await;
    let body = br#"{"success": true}"#;
    let (status, error) = post(&callback_url(&github), &[], &body[..]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        error["detail"]
            .as_str()
            .unwrap()
            .contains("x-hub-signature-256")
    );
    let (status, _) = post(
        &callback_url(&github),
        &[("x-hub-signature-256", "sha1=abc".to_owned())],
        &body[..],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The relay holds no secret: a well-formed signature is stored for the run to verify.
    let signed = Scheme::Github
        .sign("the-senders-secret", "", SystemTime::now(), body)
        .unwrap();
    let headers: Vec<(&str, String)> = signed.into_iter().collect();
    let (status, _) = post(&callback_url(&github), &headers, &body[..]).await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let standard = relay.create("hmac-standard", json!(600)).await;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let stale = Scheme::Standard
        .sign(
            secret,
            "msg_stale",
            SystemTime::now() - Duration::from_secs(600),
            body,
        )
        .unwrap();
    let (status, error) = post(&callback_url(&standard), &stale, &body[..]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(error["detail"].as_str().unwrap().contains("old"), "{error}");
    let fresh = Scheme::Standard
        .sign(secret, "msg_fresh", SystemTime::now(), body)
        .unwrap();
    let (status, first) = post(&callback_url(&standard), &fresh, &body[..]).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // The same message id again (a sender's retry, re-signed a moment later): stored once.
    let retry = Scheme::Standard
        .sign(
            secret,
            "msg_fresh",
            SystemTime::now() + Duration::from_secs(1),
            body,
        )
        .unwrap();
    let (status, again) = post(&callback_url(&standard), &retry, &body[..]).await;
    assert_eq!((status, again), (StatusCode::ACCEPTED, first));
    let stored = relay.read(&standard, 0, "0").await;
    assert_eq!(stored["callbacks"].as_array().unwrap().len(), 1);
    let headers: Vec<(String, String)> =
        serde_json::from_value(stored["callbacks"][0]["headers"].clone()).unwrap();
    // Stored untouched, so the run can verify the signature with its secret.
    Scheme::Standard
        .verify(secret, &headers, body, SystemTime::now())
        .unwrap();
}

#[tokio::test]
async fn long_polls_wake_when_a_callback_arrives_and_need_a_read_token() {
    let relay = TestRelay::start().await;
    let slot = relay.create("bearer", json!(600)).await;
    let other = relay.create("bearer", json!(600)).await;
    let read_url = format!("{}/v1/slots/{}", relay.url, slot["id"].as_str().unwrap());
    let http = reqwest::Client::new();
    assert_eq!(
        http.get(&read_url).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        http.get(&read_url)
            .bearer_auth(other["readToken"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        http.get(&read_url)
            .bearer_auth(slot["token"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED,
        "the callback token does not read"
    );
    assert_eq!(
        http.get(&read_url)
            .bearer_auth(RELAY_TOKEN)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    let started = std::time::Instant::now();
    let waiting = tokio::spawn({
        let relay_url = relay.url.clone();
        let slot = slot.clone();
        async move { read(&relay_url, &slot, 0, "30s").await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "the poll waits while there is nothing"
    );
    let (status, _) = post(
        &callback_url(&slot),
        &bearer(&slot),
        r#"{"success": false}"#,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let answer = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .expect("the waiting poll was woken")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(answer["callbacks"].as_array().unwrap().len(), 1);
    // After the last one seen, an empty answer when the (short) wait ends.
    let empty = relay.read(&slot, 1, "200ms").await;
    assert_eq!(empty["callbacks"], json!([]));
    let (status, error) = {
        let response = http
            .get(format!("{read_url}?wait=forever"))
            .bearer_auth(RELAY_TOKEN)
            .send()
            .await
            .unwrap();
        (response.status(), response.json::<Value>().await.unwrap())
    };
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["code"], "invalid_wait");
}

#[tokio::test]
async fn shutdown_answers_waiting_polls() {
    // A drain limit far past the time allowed below: the relay stops in time only if its open
    // connections (the answered poll's, kept alive by the client) are told to close.
    let relay =
        TestRelay::start_with(|config| config.shutdown_timeout = Duration::from_secs(60)).await;
    let slot = relay.create("bearer", json!(600)).await;
    let poll = {
        let http = relay.http.clone();
        let url = format!(
            "{}/v1/slots/{}?wait=60s",
            relay.url,
            slot["id"].as_str().unwrap()
        );
        let token = slot["readToken"].as_str().unwrap().to_owned();
        tokio::spawn(async move { http.get(url).bearer_auth(token).send().await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    relay.stop.cancel();
    let response = tokio::time::timeout(Duration::from_secs(20), poll)
        .await
        .expect("the poll was answered at shutdown")
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["callbacks"], json!([]));
    tokio::time::timeout(Duration::from_secs(5), relay.task)
        .await
        .expect("the relay stopped without waiting for its drain limit")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn health_and_metrics_are_served() {
    let relay = TestRelay::start().await;
    let health: Value = relay
        .http
        .get(format!("{}/healthz", relay.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    let slot = relay.create("bearer", json!(600)).await;
    post(&callback_url(&slot), &[], r#"{"success": true}"#).await;
    let metrics = relay.metrics().await;
    for line in [
        "hookgate_relay_slots_created_total 1",
        "hookgate_relay_callbacks_total{outcome=\"rejected\",status=\"401\"} 1",
        "hookgate_relay_waiters 0",
        "hookgate_relay_request_duration_seconds_count{route=\"/v1/slots\"} 1",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
}

#[tokio::test]
async fn the_client_creates_waits_and_classifies_errors() {
    let relay = TestRelay::start().await;
    let client = RelayClient::new(&relay.url, RELAY_TOKEN).unwrap();
    let slot = client
        .create_slot(&CreateSlot {
            auth: CallbackAuth::Bearer,
            deadline: Deadline::In(300),
            label: "client".to_owned(),
        })
        .await
        .unwrap();
    assert!(format!("{slot:?}").contains("***"));
    assert!(!format!("{slot:?}").contains(slot.token.as_deref().unwrap()));
    let token = slot.token.clone().unwrap();
    let sender = tokio::spawn({
        let url = slot.callback_url.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            post(
                &url,
                &[("authorization", format!("Bearer {token}"))],
                r#"{"success":true}"#,
            )
            .await
        }
    });
    let deliveries = client
        .wait(&slot.id, 0, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(sender.await.unwrap().0, StatusCode::ACCEPTED);
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].body, br#"{"success":true}"#.to_vec());

    let refused = RelayClient::new(&relay.url, "wrong-token-0123456789")
        .unwrap()
        .create_slot(&CreateSlot {
            auth: CallbackAuth::Bearer,
            deadline: Deadline::In(300),
            label: String::new(),
        })
        .await
        .unwrap_err();
    assert!(matches!(refused, ClientError::Refused(_)), "{refused}");
    assert!(refused.to_string().contains("401"), "{refused}");

    relay.stop.cancel();
    relay.task.await.unwrap().unwrap();
    let down = client
        .wait(&slot.id, 1, Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(
        down.is_transient(),
        "a relay that is down may come back: {down}"
    );
}

#[tokio::test]
async fn the_client_treats_5xx_as_transient() {
    // A stand-in proxy that answers 502 for everything, as a load balancer does while the relay
    // restarts.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .fallback(|| async { (axum::http::StatusCode::BAD_GATEWAY, "bad gateway") });
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = RelayClient::new(&url, RELAY_TOKEN).unwrap();
    let err = client
        .wait(
            &"0123456789abcdef0123456789abcdef".parse().unwrap(),
            0,
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("502"), "{err}");
}

#[tokio::test]
async fn the_embedded_relay_serves_a_whole_round() {
    let relay = EmbeddedRelay::start().await.unwrap();
    assert!(relay.url().starts_with("http://127.0.0.1:"));
    let client = RelayClient::new(relay.url(), relay.token()).unwrap();
    let slot = client
        .create_slot(&CreateSlot {
            auth: CallbackAuth::HmacStandard,
            deadline: Deadline::In(60),
            label: "embedded".to_owned(),
        })
        .await
        .unwrap();
    assert!(slot.callback_url.starts_with(relay.url()));
    let body = br#"{"success":false,"mdMessage":"tests failed"}"#;
    let headers = Scheme::Standard
        .sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_e",
            SystemTime::now(),
            body,
        )
        .unwrap();
    let (status, _) = post(&slot.callback_url, &headers, &body[..]).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let deliveries = client.wait(&slot.id, 0, Duration::ZERO).await.unwrap();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].body, body.to_vec());
    relay.stop().await;
}

// ---------------------------------------------------------------------------------------------
// GitHub Actions OIDC

const TEST_KEY: &str = include_str!("data/oidc-test-key.pem");
const TEST_JWKS: &str = include_str!("data/oidc-test-jwks.json");

/// A stand-in issuer that serves the test JWKS and counts fetches.
async fn issuer() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = fetches.clone();
    let app = axum::Router::new().route(
        "/.well-known/jwks",
        axum::routing::get(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { ([("content-type", "application/json")], TEST_JWKS) }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, fetches)
}

fn oidc_token(issuer: &str, audience: &str, repository: &str, kid: &str, exp_in: i64) -> String {
    oidc_token_issued(issuer, audience, repository, kid, exp_in, (0, 0))
}

/// A token whose `iat` and `nbf` are the given seconds from now (GitHub sets both).
fn oidc_token_issued(
    issuer: &str,
    audience: &str,
    repository: &str,
    kid: &str,
    exp_in: i64,
    (iat_in, nbf_in): (i64, i64),
) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let owner = repository.split('/').next().unwrap();
    let claims = json!({
        "iss": issuer, "aud": audience, "sub": format!("repo:{repository}:ref:refs/heads/main"),
        "repository": repository, "repository_owner": owner, "iat": now + iat_in,
        "nbf": now + nbf_in, "exp": now + exp_in,
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(TEST_KEY.as_bytes()).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn github_actions_oidc_tokens_create_slots_for_allowed_repositories() {
    let (issuer, fetches) = issuer().await;
    let audience = "https://relay.example";
    let relay = TestRelay::start_with(|config| {
        config.oidc = Some(OidcConfig {
            issuer: issuer.clone(),
            jwks_url: format!("{issuer}/.well-known/jwks"),
            audience: audience.to_owned(),
            allowed_repositories: vec!["octo-org/deploy".to_owned()],
            allowed_owners: vec!["trusted-org".to_owned()],
        });
    })
    .await;
    let create = |token: String| {
        let url = format!("{}/v1/slots", relay.url);
        async move {
            post(
                &url,
                &[("authorization", format!("Bearer {token}"))],
                json!({"auth": "hmac-standard", "deadline": 60}).to_string(),
            )
            .await
        }
    };
    let hookgate_test_key = "hookgate-test-key";
    let (status, _) = create(oidc_token(
        &issuer,
        audience,
        "octo-org/deploy",
        hookgate_test_key,
        300,
    ))
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = create(oidc_token(
        &issuer,
        audience,
        "trusted-org/anything",
        hookgate_test_key,
        300,
    ))
    .await;
    assert_eq!(status, StatusCode::CREATED, "an allowed owner");
    let (status, error) = create(oidc_token(
        &issuer,
        audience,
        "octo-org/other",
        hookgate_test_key,
        300,
    ))
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(error["detail"].as_str().unwrap().contains("octo-org/other"));
    let (status, _) = create(oidc_token(
        &issuer,
        "https://elsewhere",
        "octo-org/deploy",
        hookgate_test_key,
        300,
    ))
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "wrong audience");
    let (status, _) = create(oidc_token(
        "https://evil.example",
        audience,
        "octo-org/deploy",
        hookgate_test_key,
        300,
    ))
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "wrong issuer");
    let (status, _) = create(oidc_token(
        &issuer,
        audience,
        "octo-org/deploy",
        hookgate_test_key,
        -600,
    ))
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "expired");
    // The keys were fetched once and cached.
    assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 1);
    let (status, error) = create(oidc_token(
        &issuer,
        audience,
        "octo-org/deploy",
        "rotated-key",
        300,
    ))
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a key the issuer does not publish"
    );
    assert!(error["detail"].as_str().unwrap().contains("key"), "{error}");
    // A token signed by another key but claiming the published kid fails on the signature.
    let forged = {
        let token = oidc_token(&issuer, audience, "octo-org/deploy", hookgate_test_key, 300);
        let (head_and_claims, _) = token.rsplit_once('.').unwrap();
        format!(
            "{head_and_claims}.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 256])
        )
    };
    let (status, _) = create(forged).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Not valid yet, or issued in the future: refused past the stated clock allowance (each
    // check alone), taken within it.
    for ((iat_in, nbf_in), expected) in [
        ((600, 600), StatusCode::UNAUTHORIZED),
        ((0, 120), StatusCode::UNAUTHORIZED),
        ((120, 0), StatusCode::UNAUTHORIZED),
        ((30, 30), StatusCode::CREATED),
    ] {
        let (status, error) = create(oidc_token_issued(
            &issuer,
            audience,
            "octo-org/deploy",
            hookgate_test_key,
            900,
            (iat_in, nbf_in),
        ))
        .await;
        assert_eq!(
            status, expected,
            "iat in {iat_in} s, nbf in {nbf_in} s: {error}"
        );
    }
}

#[tokio::test]
async fn an_oidc_token_is_503_while_the_issuers_keys_cannot_be_fetched() {
    // An issuer nobody listens on.
    let gone = format!(
        "http://{}",
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    );
    let audience = "https://relay.example";
    let issuer = gone.clone();
    let relay = TestRelay::start_with(move |config| {
        config.oidc = Some(OidcConfig {
            issuer: issuer.clone(),
            jwks_url: format!("{issuer}/.well-known/jwks"),
            audience: audience.to_owned(),
            allowed_repositories: vec!["octo-org/deploy".to_owned()],
            allowed_owners: Vec::new(),
        });
    })
    .await;
    let token = oidc_token(&gone, audience, "octo-org/deploy", "hookgate-test-key", 300);
    let (status, error) = post(
        &format!("{}/v1/slots", relay.url),
        &[("authorization", format!("Bearer {token}"))],
        json!({"auth": "hmac-standard", "deadline": 60}).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error["code"], "oidc_keys_unavailable", "{error}");
    assert!(
        error["detail"]
            .as_str()
            .unwrap()
            .contains("OIDC issuer's keys"),
        "{error}"
    );
}
