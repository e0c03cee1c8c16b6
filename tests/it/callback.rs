//! `hookgate callback` against a small receiver on a real socket that records every request
//! and answers from a script: the verdict body, the bearer token and both HMAC schemes (checked
//! with hookgate-auth, as the engine checks them), retries on 5xx with one message id, no retry
//! on 4xx, and no secret in the command's output.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use hookgate_auth::{Scheme, bearer_matches, standard};
use serde_json::{Value, json};

use crate::common::hookgate;

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Recorded {
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Clone)]
struct Receiver {
    requests: Arc<Mutex<Vec<Recorded>>>,
    /// The answers, in order; the last one repeats.
    script: Arc<Vec<(u16, &'static str)>>,
}

async fn record(
    State(receiver): State<Receiver>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let mut requests = receiver.requests.lock().unwrap();
    requests.push(Recorded {
        method,
        path: uri.path().to_string(),
        headers: headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_string(),
                    value.to_str().unwrap().to_string(),
                )
            })
            .collect(),
        body: body.to_vec(),
    });
    let index = (requests.len() - 1).min(receiver.script.len() - 1);
    let (status, body) = receiver.script[index];
    (StatusCode::from_u16(status).unwrap(), body.to_string())
}

/// Starts a receiver on 127.0.0.1:0; returns its base URL and what it records.
async fn start(script: Vec<(u16, &'static str)>) -> (String, Arc<Mutex<Vec<Recorded>>>) {
    let receiver = Receiver {
        requests: Arc::default(),
        script: Arc::new(script),
    };
    let requests = receiver.requests.clone();
    let app = Router::new().fallback(record).with_state(receiver);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}"), requests)
}

/// Runs `hookgate callback ARGS` with `env` set and the credential variables otherwise unset.
async fn callback(args: &[&str], env: &[(&str, &str)]) -> Output {
    let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let mut cmd = hookgate();
        cmd.arg("callback")
            .args(&args)
            .env_remove("HOOKGATE_CALLBACK_TOKEN")
            .env_remove("HOOKGATE_HMAC_SECRET")
            .env_remove("HOOKGATE_CALLBACK_URL");
        for (key, value) in env {
            cmd.env(key, value);
        }
        cmd.output().unwrap()
    })
    .await
    .unwrap()
}

fn output_text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn assert_not_printed(output: &Output, secret: &str) {
    let text = output_text(output);
    assert!(!text.contains(secret), "secret printed:\n{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bearer_token_from_the_environment_and_the_verdict() {
    let (base, requests) = start(vec![(202, r#"{"status":"stored"}"#)]).await;
    let token = "eyJhbGciOiJIUzI1NiJ9.slot-token-7f3a9c.c2lnbmF0dXJl";
    let url = format!("{base}/v1/slots/slot-1/callback");

    let output = callback(
        &[
            "--url",
            &url,
            "--success",
            "true",
            "--message",
            "all **green**",
        ],
        &[("HOOKGATE_CALLBACK_TOKEN", token)],
    )
    .await;

    assert_eq!(output.status.code(), Some(0), "{}", output_text(&output));
    let requests = requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, Method::POST);
    assert_eq!(request.path, "/v1/slots/slot-1/callback");
    assert!(bearer_matches(request.header("authorization"), token));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.json(),
        json!({"success": true, "mdMessage": "all **green**"})
    );
    assert!(request.header("webhook-signature").is_none());
    assert!(output_text(&output).contains("202"));
    assert_not_printed(&output, token);
    assert_not_printed(&output, "slot-token-7f3a9c");
}

#[tokio::test(flavor = "multi_thread")]
async fn standard_webhooks_retries_5xx_with_one_message_id() {
    let (base, requests) = start(vec![
        (503, "overloaded"),
        (
            502,
            r#"{"code":"bad_gateway","detail":"upstream restarting"}"#,
        ),
        (202, ""),
    ])
    .await;
    let secret = standard::Secret::generate();
    let url = format!("{base}/cb");

    let output = callback(
        &[
            "--url",
            &url,
            "--hmac-secret",
            &secret,
            "--success",
            "false",
            "--message",
            "3 tests failed",
            "--retry-delay",
            "20ms",
        ],
        &[],
    )
    .await;

    assert_eq!(output.status.code(), Some(0), "{}", output_text(&output));
    let requests = requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 3, "two 5xx answers, then success");
    let first_id = requests[0].header("webhook-id").unwrap().to_string();
    assert!(first_id.starts_with("msg_"), "{first_id}");
    for request in &requests {
        assert_eq!(request.header("webhook-id"), Some(first_id.as_str()));
        assert_eq!(
            request.json(),
            json!({"success": false, "mdMessage": "3 tests failed"})
        );
        assert!(request.header("authorization").is_none());
        Scheme::Standard
            .verify(&secret, &request.headers, &request.body, SystemTime::now())
            .unwrap();
        // Signed for this body only.
        assert!(
            Scheme::Standard
                .verify(
                    &secret,
                    &request.headers,
                    br#"{"success":true}"#,
                    SystemTime::now()
                )
                .is_err()
        );
    }
    let text = output_text(&output);
    assert!(text.contains("503"), "{text}");
    assert!(text.contains("upstream restarting"), "{text}");
    assert_not_printed(&output, &secret);
    assert_not_printed(&output, secret.trim_start_matches("whsec_"));
}

#[tokio::test(flavor = "multi_thread")]
async fn github_signature_with_the_secret_from_the_environment() {
    let (base, requests) = start(vec![(200, "")]).await;
    let secret = "It's a Secret to Everybody, 9d2f";
    let url = format!("{base}/hook");

    let output = callback(
        &["--url", &url, "--scheme", "github", "--success", "false"],
        &[("HOOKGATE_HMAC_SECRET", secret)],
    )
    .await;

    assert_eq!(output.status.code(), Some(0), "{}", output_text(&output));
    let requests = requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.json(), json!({"success": false}));
    let signature = request.header("x-hub-signature-256").unwrap();
    assert!(signature.starts_with("sha256="), "{signature}");
    Scheme::Github
        .verify(secret, &request.headers, &request.body, SystemTime::now())
        .unwrap();
    assert!(request.header("webhook-signature").is_none());
    assert_not_printed(&output, secret);
}

#[tokio::test(flavor = "multi_thread")]
async fn client_errors_are_explained_and_not_retried() {
    let (base, requests) = start(vec![(
        401,
        r#"{"code":"unauthorized","detail":"the signature does not match the body"}"#,
    )])
    .await;
    let token = "wrong-token-5be1";

    let output = callback(
        &[
            "--url",
            &format!("{base}/cb"),
            "--token",
            token,
            "--success",
            "true",
            "--retry-delay",
            "10ms",
        ],
        &[],
    )
    .await;

    assert_eq!(output.status.code(), Some(1), "{}", output_text(&output));
    assert_eq!(requests.lock().unwrap().len(), 1, "a 4xx is final");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("401"), "{stderr}");
    assert!(stderr.contains("unauthorized"), "{stderr}");
    assert!(
        stderr.contains("the signature does not match the body"),
        "{stderr}"
    );
    assert_not_printed(&output, token);
}

#[tokio::test(flavor = "multi_thread")]
async fn gives_up_after_the_configured_retries() {
    let (base, requests) = start(vec![(500, "")]).await;

    let output = callback(
        &[
            "--url",
            &format!("{base}/cb"),
            "--token",
            "t",
            "--success",
            "true",
            "--retries",
            "2",
            "--retry-delay",
            "10ms",
        ],
        &[],
    )
    .await;

    assert_eq!(output.status.code(), Some(1), "{}", output_text(&output));
    assert_eq!(
        requests.lock().unwrap().len(),
        3,
        "one attempt and two retries"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("after 3 attempts"), "{stderr}");
    assert!(stderr.contains("500"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_errors_are_retried_then_reported() {
    // A port that was just free: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);

    let output = callback(
        &[
            "--url",
            &format!("http://{address}/cb"),
            "--token",
            "t",
            "--success",
            "true",
            "--retries",
            "1",
            "--retry-delay",
            "10ms",
        ],
        &[],
    )
    .await;

    assert_eq!(output.status.code(), Some(1), "{}", output_text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("attempt 1 of 2 failed: cannot connect"),
        "{stderr}"
    );
    assert!(stderr.contains("after 2 attempts"), "{stderr}");
}

/// Arguments and environment of one run.
type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>);

#[tokio::test(flavor = "multi_thread")]
async fn unusable_credentials_are_usage_errors_and_nothing_is_sent() {
    let (base, requests) = start(vec![(202, "")]).await;
    let url = format!("{base}/cb");
    let bad_secret = "whsec_not*base64*at-all-3c9e";

    let cases: Vec<Case> = vec![
        // Neither a token nor a secret.
        (vec!["--url", &url, "--success", "true"], vec![]),
        // Both, on the command line.
        (
            vec![
                "--url",
                &url,
                "--token",
                "a",
                "--hmac-secret",
                "b",
                "--success",
                "true",
            ],
            vec![],
        ),
        // Both, in the environment.
        (
            vec!["--url", &url, "--success", "true"],
            vec![
                ("HOOKGATE_CALLBACK_TOKEN", "a"),
                ("HOOKGATE_HMAC_SECRET", "b"),
            ],
        ),
        // A Standard Webhooks secret that is not base64.
        (
            vec![
                "--url",
                &url,
                "--hmac-secret",
                bad_secret,
                "--success",
                "true",
            ],
            vec![],
        ),
        // No verdict.
        (vec!["--url", &url, "--token", "a"], vec![]),
        // A verdict that is not a boolean.
        (
            vec!["--url", &url, "--token", "a", "--success", "yes"],
            vec![],
        ),
    ];
    for (args, env) in cases {
        let output = callback(&args, &env).await;
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            output_text(&output)
        );
        assert_not_printed(&output, bad_secret);
    }
    assert_eq!(requests.lock().unwrap().len(), 0);
}

/// The real relay (embedded, on a real socket) takes what `hookgate callback` sends in each
/// mode, stores it once, and what it hands back verifies with the secret.
#[tokio::test(flavor = "multi_thread")]
async fn the_relay_stores_what_hookgate_callback_sends() {
    use hookgate_protocol::{CallbackAuth, CreateSlot, Deadline, RelayClient};
    use hookgate_relay::EmbeddedRelay;
    use std::time::Duration;

    let relay = EmbeddedRelay::start().await.unwrap();
    let client = RelayClient::new(relay.url(), relay.token()).unwrap();
    let standard_secret = standard::Secret::generate();
    let github_secret = "relay-e2e-github-secret-51aa";

    for auth in [
        CallbackAuth::Bearer,
        CallbackAuth::HmacStandard,
        CallbackAuth::HmacGithub,
    ] {
        let slot = client
            .create_slot(&CreateSlot {
                auth,
                deadline: Deadline::At(SystemTime::now() + Duration::from_secs(600)),
                label: "callback test".to_string(),
            })
            .await
            .unwrap();
        let mut args = vec![
            "--url".to_string(),
            slot.callback_url.clone(),
            "--success".to_string(),
            "true".to_string(),
            "--message".to_string(),
            format!("sent as {auth:?}"),
        ];
        let (env, secret): (Vec<(&str, &str)>, &str) = match auth {
            CallbackAuth::Bearer => (
                vec![("HOOKGATE_CALLBACK_TOKEN", slot.token.as_deref().unwrap())],
                slot.token.as_deref().unwrap(),
            ),
            CallbackAuth::HmacStandard => (
                vec![("HOOKGATE_HMAC_SECRET", standard_secret.as_str())],
                standard_secret.as_str(),
            ),
            CallbackAuth::HmacGithub => {
                args.extend(["--scheme".to_string(), "github".to_string()]);
                (vec![("HOOKGATE_HMAC_SECRET", github_secret)], github_secret)
            }
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = callback(&args, &env).await;
        assert_eq!(
            output.status.code(),
            Some(0),
            "{auth:?}: {}",
            output_text(&output)
        );
        assert_not_printed(&output, secret);

        let deliveries = client
            .wait(&slot.id, 0, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(deliveries.len(), 1, "{auth:?}");
        let delivery = &deliveries[0];
        assert_eq!(
            serde_json::from_slice::<Value>(&delivery.body).unwrap(),
            // The slot comes from the callback URL, signed into the body with the verdict.
            json!({"success": true, "mdMessage": format!("sent as {auth:?}"), "slot": slot.id.as_str()}),
            "{auth:?}"
        );
        let scheme = match auth {
            CallbackAuth::Bearer => continue,
            CallbackAuth::HmacStandard => Scheme::Standard,
            CallbackAuth::HmacGithub => Scheme::Github,
        };
        scheme
            .verify(
                secret,
                &delivery.headers,
                &delivery.body,
                delivery.received_at,
            )
            .unwrap_or_else(|err| panic!("{auth:?}: {err}"));
    }

    // A token for another slot, and a slot that does not exist: refused, explained, not retried.
    let other = client
        .create_slot(&CreateSlot {
            auth: CallbackAuth::Bearer,
            deadline: Deadline::In(600),
            label: "other".to_string(),
        })
        .await
        .unwrap();
    let target = client
        .create_slot(&CreateSlot {
            auth: CallbackAuth::Bearer,
            deadline: Deadline::In(600),
            label: "target".to_string(),
        })
        .await
        .unwrap();
    let output = callback(
        &["--url", &target.callback_url, "--success", "true"],
        &[("HOOKGATE_CALLBACK_TOKEN", other.token.as_deref().unwrap())],
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{}", output_text(&output));
    assert!(
        output_text(&output).contains("401"),
        "{}",
        output_text(&output)
    );
    let output = callback(
        &[
            "--url",
            &format!("{}/v1/callbacks/no-such-slot", relay.url()),
            "--token",
            "x",
            "--success",
            "true",
        ],
        &[],
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{}", output_text(&output));
    assert!(
        output_text(&output).contains("404"),
        "{}",
        output_text(&output)
    );
    assert!(
        client
            .wait(&target.id, 0, Duration::from_millis(100))
            .await
            .unwrap()
            .is_empty()
    );
    relay.stop().await;
}
