//! The relay as a GitHub App answering deployment protection rules, end to end: the real
//! binary, a fake GitHub that sends signed `deployment_protection_rule` events shaped by
//! GitHub's webhook schema and checks every review against GitHub's REST schema, and a test
//! service standing for what the gates call. Covers approve and reject (callback, poll,
//! timeout), forged and missing signatures, a redelivery, SIGKILL while a gate waits, two
//! replicas on one PostgreSQL database, a secret not granted and the outbound address policy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::fake_github::{FakeGithub, INSTALLATION_ID, Scripted, app_private_key};
use crate::relay::{PUBLIC_URL, RelayProcess, Schema};
use crate::support::{Reply, TestServer};

const WEBHOOK_SECRET: &str = "app-webhook-secret-for-tests";
const REPOSITORY: &str = "acme/web";

/// A deployment file whose `production` target has one before-deployment gate, `smoke`,
/// calling `{service}/smoke` with the extra webhook fields given; the body names the callback
/// slot unless the extra fields say how else to wait.
fn deploy_file(service: &str, webhook_extra: &str) -> String {
    let body = if webhook_extra.contains("waitFor") {
        r#"'{"sha": "{{ github.sha }}"}'"#
    } else {
        r#"'{"callbackUri": "{{ armory.callbackUri }}", "token": "{{ callback.token }}", "sha": "{{ github.sha }}"}'"#
    };
    format!(
        r#"version: v1
kind: kubernetes
application: web
targets:
  production:
    account: prod-cluster
    namespace: web
    constraints:
      beforeDeployment:
        - runWebhook:
            name: smoke
webhooks:
  - name: smoke
    method: POST
    uriTemplate: {service}/smoke
    headers:
      - key: Content-Type
        value: application/json
    bodyTemplate:
      inline: {body}
{webhook_extra}"#
    )
}

/// The event GitHub sends, from the schema-shaped fixture, for `run_id`.
fn protection_event(run_id: u64, environment: &str) -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/github-deployment-protection-rule-event.json"
    ))
    .unwrap();
    let mut event: Value = serde_json::from_str(&text).unwrap();
    event["environment"] = json!(environment);
    event["deployment_callback_url"] = json!(format!(
        "https://api.github.com/repos/{REPOSITORY}/actions/runs/{run_id}/deployment_protection_rule"
    ));
    event["installation"]["id"] = json!(INSTALLATION_ID);
    event["deployment"]["sha"] = json!("9fceb02d0ae598e95dc970b74767f19372d61af8");
    event["deployment"]["ref"] = json!("refs/heads/main");
    event["deployment"]["environment"] = json!(environment);
    event["deployment"]["id"] = json!(run_id + 9000);
    event["deployment"]["created_at"] =
        json!(humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string());
    check_event_schema(&event);
    event
}

/// Checks `event` against GitHub's webhook schema for `deployment_protection_rule`.
fn check_event_schema(event: &Value) {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/github-webhook-deployment-protection-rule.json"
    ))
    .unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let root = json!({
        "components": doc["components"],
        "$ref": "#/components/schemas/webhook-deployment-protection-rule-requested",
    });
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&root)
        .unwrap();
    let errors: Vec<String> = validator
        .iter_errors(event)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "the event breaks GitHub's schema: {errors:?}"
    );
}

/// Signs and sends one delivery; answers the status.
async fn deliver(
    relay: &RelayProcess,
    delivery: &str,
    event: &str,
    body: &Value,
    signature: Option<&str>,
) -> StatusCode {
    let bytes = serde_json::to_vec(body).unwrap();
    let secret = hookgate_auth::github::Secret::new(WEBHOOK_SECRET).unwrap();
    let mut request = reqwest::Client::new()
        .post(format!("{}/github/webhook", relay.url()))
        .header("X-GitHub-Event", event)
        .header("X-GitHub-Delivery", delivery)
        .header("User-Agent", "GitHub-Hookshot/test")
        .header("Content-Type", "application/json");
    match signature {
        Some("") => {}
        Some(forged) => request = request.header("X-Hub-Signature-256", forged),
        None => {
            request = request.header(
                "X-Hub-Signature-256",
                hookgate_auth::github::sign(&secret, &bytes),
            )
        }
    }
    request.body(bytes).send().await.unwrap().status()
}

/// Sends `event` as a signed `deployment_protection_rule` delivery.
async fn deliver_event(relay: &RelayProcess, delivery: &str, event: &Value) -> StatusCode {
    deliver(relay, delivery, "deployment_protection_rule", event, None).await
}

/// Sends a signed event asking for the gate of run `run_id` to production.
async fn request_gate(relay: &RelayProcess, delivery: &str, run_id: u64) -> StatusCode {
    let event = protection_event(run_id, "production");
    deliver_event(relay, delivery, &event).await
}

/// Everything one App test needs.
struct Setup {
    github: FakeGithub,
    dir: tempfile::TempDir,
    lease: &'static str,
}

impl Setup {
    async fn new(deploy_yml: &str, gates_config: &str) -> Self {
        let github = FakeGithub::start("ghp_unused_static_token").await;
        if !deploy_yml.is_empty() {
            github.set_file(REPOSITORY, "deploy.yml", None, deploy_yml);
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.pem"), app_private_key()).unwrap();
        std::fs::write(dir.path().join("gates.yml"), gates_config).unwrap();
        std::fs::write(
            dir.path().join("secrets.yml"),
            "API_TOKEN: s3cr3t-api-token-value\n",
        )
        .unwrap();
        Setup {
            github,
            dir,
            lease: "2s",
        }
    }

    fn sqlite(&self) -> String {
        format!("sqlite:{}", self.dir.path().join("relay.sqlite").display())
    }

    fn relay(&self, store: &str) -> RelayProcess {
        let path = |name: &str| self.dir.path().join(name).display().to_string();
        RelayProcess::start_with(
            store,
            "127.0.0.1:0",
            &[
                "--github-app-id".to_owned(),
                crate::fake_github::APP_ID.to_string(),
                "--github-app-key".to_owned(),
                path("app.pem"),
                "--github-webhook-secret".to_owned(),
                WEBHOOK_SECRET.to_owned(),
                "--github-api-url".to_owned(),
                self.github.url.clone(),
                "--gates-config".to_owned(),
                path("gates.yml"),
                "--gate-secrets".to_owned(),
                path("secrets.yml"),
                "--gate-lease".to_owned(),
                self.lease.to_owned(),
                "--gate-claim-interval".to_owned(),
                "200ms".to_owned(),
                "--gate-report-interval".to_owned(),
                "0s".to_owned(),
            ],
        )
    }

    /// Starts a relay on a SQLite file, asks it for the gate of `run_id` to production and
    /// waits for the answer.
    async fn gate_answer(&self, delivery: &str, run_id: u64) -> (RelayProcess, Value) {
        let relay = self.relay(&self.sqlite());
        request_gate(&relay, delivery, run_id).await;
        let answer = self.answer(run_id, &relay).await;
        (relay, answer)
    }

    /// Waits for the answer (approve or reject) of `run_id`.
    async fn answer(&self, run_id: u64, relay: &RelayProcess) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some((_, body)) = self
                .github
                .answers()
                .into_iter()
                .find(|(id, _)| *id == run_id)
            {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "no answer for run {run_id}; reviews: {:?}\nrelay log:\n{}",
                self.github.reviews(),
                relay.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A gate that calls a service answering 200 at once (`waitFor: none`), with a GitHub that
/// answers the next `times` protection-rule reviews (status reports and answers alike) with
/// `refusal`.
async fn github_refusing_reviews(times: usize, refusal: Scripted) -> (TestServer, Setup) {
    let service = TestServer::start(|_, _| Reply::status(200));
    let setup = Setup::new(
        &deploy_file(&service.url, "    waitFor: none\n"),
        ALLOW_LOCAL,
    )
    .await;
    for _ in 0..times {
        setup.github.script(refusal.clone());
    }
    (service, setup)
}

/// Allows the test service on 127.0.0.1 (the policy refuses loopback otherwise).
const ALLOW_LOCAL: &str = "allowOutbound: [127.0.0.1]\n";

/// A service that answers 202 to the gate's request; the test calls back itself.
fn accepting_service() -> TestServer {
    TestServer::start(|_, _| Reply::status(202))
}

/// Waits until the service got `count` requests, and returns them.
fn wait_for_requests(service: &TestServer, count: usize) -> Vec<crate::support::Seen> {
    assert!(
        service.wait_for(Duration::from_secs(30), |seen| seen.len() >= count),
        "the service got {} requests, expected {count}",
        service.requests().len()
    );
    service.requests()
}

/// Sends the gate's callback to the slot the service was told of.
async fn call_back(
    relay: &RelayProcess,
    request: &crate::support::Seen,
    success: bool,
    message: &str,
) {
    let body = request.json();
    let url = body["callbackUri"]
        .as_str()
        .unwrap()
        .replace(PUBLIC_URL, &relay.url());
    let response = reqwest::Client::new()
        .post(url)
        .bearer_auth(body["token"].as_str().unwrap())
        .json(&json!({"success": success, "mdMessage": message}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
}

/// The comment of an answer that must be a rejection.
fn rejection(answer: &Value) -> &str {
    assert_eq!(answer["state"], "rejected", "{answer}");
    answer["comment"].as_str().unwrap()
}

/// Fails unless the relay's metrics have the line `line`.
async fn assert_metric(relay: &RelayProcess, line: &str) {
    let text = metrics(relay).await;
    assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
}

async fn metrics(relay: &RelayProcess) -> String {
    reqwest::get(format!("{}/metrics", relay.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_approves_a_deployment_after_a_signed_callback() {
    let service = accepting_service();
    let setup = Setup::new(&deploy_file(&service.url, ""), ALLOW_LOCAL).await;
    let relay = setup.relay(&setup.sqlite());
    let status = request_gate(&relay, "delivery-approve", 101).await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let requests = wait_for_requests(&service, 1);
    assert!(requests[0].header("idempotency-key").is_some());
    assert_eq!(
        requests[0].json()["sha"],
        "9fceb02d0ae598e95dc970b74767f19372d61af8"
    );
    call_back(&relay, &requests[0], true, "all 12 smoke tests passed").await;

    let answer = setup.answer(101, &relay).await;
    assert_eq!(answer["state"], "approved");
    assert_eq!(answer["environment_name"], "production");
    let comment = answer["comment"].as_str().unwrap();
    assert!(comment.contains("approved"), "{comment}");
    assert!(comment.contains("`smoke`: success"), "{comment}");
    assert!(comment.contains("all 12 smoke tests passed"), "{comment}");
    // Status reports came first, within GitHub's limits.
    let reports: Vec<Value> = setup
        .github
        .reviews()
        .into_iter()
        .filter(|(_, body)| body.get("state").is_none())
        .map(|(_, body)| body)
        .collect();
    assert!(
        !reports.is_empty(),
        "no status report while the gate waited"
    );
    assert!(reports.len() <= 10);
    for review in setup.github.reviews() {
        assert!(review.1["comment"].as_str().unwrap().chars().count() <= 1024);
    }
    // The deployment file was read from the default branch, with an installation token.
    let contents: Vec<_> = setup
        .github
        .calls()
        .into_iter()
        .filter(|c| c.path.contains("/contents/"))
        .collect();
    assert_eq!(contents.len(), 1);
    assert_eq!(contents[0].query, "");
    assert!(
        contents[0]
            .authorization
            .starts_with("Bearer ghs_installation")
    );
    setup.github.assert_no_problems();

    let text = metrics(&relay).await;
    assert!(text.contains("hookgate_gates_approved_total 1"), "{text}");
    assert!(
        text.contains("hookgate_gate_answer_seconds_count 1"),
        "{text}"
    );
    assert!(relay.log().contains("gate answered"));
    assert!(relay.log().contains("run_id=101"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_rejects_a_deployment_on_a_failed_callback() {
    let service = accepting_service();
    let setup = Setup::new(&deploy_file(&service.url, ""), ALLOW_LOCAL).await;
    let relay = setup.relay(&setup.sqlite());
    request_gate(&relay, "delivery-reject", 102).await;
    let requests = wait_for_requests(&service, 1);
    call_back(&relay, &requests[0], false, "3 smoke tests failed").await;
    let answer = setup.answer(102, &relay).await;
    let comment = rejection(&answer);
    assert!(comment.contains("`smoke`: failure"), "{comment}");
    assert!(comment.contains("3 smoke tests failed"), "{comment}");
    setup.github.assert_no_problems();
    assert_metric(&relay, "hookgate_gates_rejected_total 1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_rejects_a_deployment_on_a_failed_poll() {
    let service = TestServer::start(|seen, _| match seen.method.as_str() {
        "POST" => Reply::json(json!({"state": "RUNNING"})),
        _ => Reply::json(json!({"state": "TERMINAL", "message": "canary unhealthy"})),
    });
    let extra = "    waitFor: poll\n    poll:\n      statusUrlResolution: getMethod\n      statusJsonPath: $.state\n      successStatuses: [SUCCEEDED]\n      terminalStatuses: [TERMINAL]\n      progressJsonPath: $.message\n      interval: 100ms\n";
    let setup = Setup::new(&deploy_file(&service.url, extra), ALLOW_LOCAL).await;
    let (_relay, answer) = setup.gate_answer("delivery-poll", 103).await;
    let comment = rejection(&answer);
    assert!(comment.contains("TERMINAL"), "{comment}");
    setup.github.assert_no_problems();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_rejects_a_deployment_whose_gate_times_out() {
    let service = accepting_service();
    let setup = Setup::new(&deploy_file(&service.url, "    timeout: 2s\n"), ALLOW_LOCAL).await;
    let (relay, answer) = setup.gate_answer("delivery-timeout", 104).await;
    let comment = rejection(&answer);
    assert!(comment.contains("timed_out"), "{comment}");
    assert!(comment.contains("no result within"), "{comment}");
    assert_metric(&relay, "hookgate_gates_timed_out_total 1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_rejects_a_deployment_past_the_servers_gate_timeout() {
    let service = accepting_service();
    let setup = Setup::new(
        &deploy_file(&service.url, ""),
        &format!("{ALLOW_LOCAL}timeout: 2s\n"),
    )
    .await;
    let (relay, answer) = setup.gate_answer("delivery-gate-timeout", 112).await;
    let comment = rejection(&answer);
    assert!(comment.contains("the gate's time limit of 2s"), "{comment}");
    assert_metric(&relay, "hookgate_gates_timed_out_total 1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_refuses_forged_and_missing_webhook_signatures() {
    let service = accepting_service();
    let setup = Setup::new(&deploy_file(&service.url, ""), ALLOW_LOCAL).await;
    let relay = setup.relay(&setup.sqlite());
    let event = protection_event(105, "production");
    let forged = hookgate_auth::github::sign(
        &hookgate_auth::github::Secret::new("not-the-secret").unwrap(),
        &serde_json::to_vec(&event).unwrap(),
    );
    assert_eq!(
        deliver(
            &relay,
            "delivery-forged",
            "deployment_protection_rule",
            &event,
            Some(&forged)
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        deliver(
            &relay,
            "delivery-unsigned",
            "deployment_protection_rule",
            &event,
            Some("")
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    // Signed right, but for another body.
    let mut tampered = event.clone();
    tampered["environment"] = json!("staging");
    let signed_for_other = hookgate_auth::github::sign(
        &hookgate_auth::github::Secret::new(WEBHOOK_SECRET).unwrap(),
        &serde_json::to_vec(&event).unwrap(),
    );
    assert_eq!(
        deliver(
            &relay,
            "delivery-tampered",
            "deployment_protection_rule",
            &tampered,
            Some(&signed_for_other)
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    // ping and other events, signed, are answered and ignored.
    assert_eq!(
        deliver(&relay, "delivery-ping", "ping", &json!({"zen": "hi"}), None).await,
        StatusCode::OK
    );
    assert_eq!(
        deliver(&relay, "delivery-push", "push", &json!({}), None).await,
        StatusCode::ACCEPTED
    );

    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(service.requests().is_empty(), "a refused event ran a gate");
    assert!(
        setup.github.calls().is_empty(),
        "a refused event reached GitHub"
    );
    let text = metrics(&relay).await;
    assert!(
        text.contains("hookgate_github_webhooks_total{outcome=\"unauthorized\"} 3"),
        "{text}"
    );
    assert!(text.contains("hookgate_gates_open 0"), "{text}");
    assert!(!relay.log().contains(WEBHOOK_SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_runs_a_redelivered_event_once() {
    let service = accepting_service();
    let setup = Setup::new(&deploy_file(&service.url, ""), ALLOW_LOCAL).await;
    let relay = setup.relay(&setup.sqlite());
    let event = protection_event(106, "production");
    assert_eq!(
        deliver_event(&relay, "delivery-again", &event).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        deliver_event(&relay, "delivery-again", &event).await,
        StatusCode::OK
    );
    let requests = wait_for_requests(&service, 1);
    assert_eq!(
        deliver_event(&relay, "delivery-again", &event).await,
        StatusCode::OK
    );
    call_back(&relay, &requests[0], true, "ok").await;
    setup.answer(106, &relay).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(service.requests().len(), 1);
    assert_eq!(setup.github.answers().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_gate_resumes_after_sigkill_and_answers_once() {
    let service = accepting_service();
    let setup = Setup::new(&deploy_file(&service.url, ""), ALLOW_LOCAL).await;
    let store = setup.sqlite();
    let mut relay = setup.relay(&store);
    request_gate(&relay, "delivery-kill", 107).await;
    let requests = wait_for_requests(&service, 1);
    // The request was answered and written down; the gate waits for its callback.
    tokio::time::sleep(Duration::from_millis(300)).await;
    relay.kill_9();

    let restarted = setup.relay(&store);
    // The service's callback goes to the slot it was told of, which the restarted relay keeps.
    call_back(
        &restarted,
        &requests[0],
        true,
        "passed while the relay was down",
    )
    .await;
    let answer = setup.answer(107, &restarted).await;
    assert_eq!(answer["state"], "approved");
    assert!(
        answer["comment"]
            .as_str()
            .unwrap()
            .contains("passed while the relay was down")
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        service.requests().len(),
        1,
        "the webhook was sent again after the restart"
    );
    assert_eq!(setup.github.answers().len(), 1);
    let text = metrics(&restarted).await;
    assert!(text.contains("hookgate_gates_resumed_total 1"), "{text}");
    setup.github.assert_no_problems();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_two_replicas_on_postgres_drive_a_gate_once() {
    let schema = Schema::create().await;
    let service = accepting_service();
    let setup = Setup::new(&deploy_file(&service.url, ""), ALLOW_LOCAL).await;
    let mut first = setup.relay(&schema.store_url());
    let mut second = setup.relay(&schema.store_url());
    let event = protection_event(108, "production");
    assert_eq!(
        deliver_event(&first, "delivery-replicas", &event).await,
        StatusCode::ACCEPTED
    );
    // GitHub redelivers to the other replica behind the load balancer: still one gate.
    assert_eq!(
        deliver_event(&second, "delivery-replicas", &event).await,
        StatusCode::OK
    );
    let requests = wait_for_requests(&service, 1);
    // Both replicas look for gates every 200 ms, for longer than a lease (2 s): only the lease
    // holder sends, and it keeps its lease by renewing it.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(service.requests().len(), 1);
    let first_drives = first.log().contains("gate taken");
    assert_ne!(
        first_drives,
        second.log().contains("gate taken"),
        "exactly one replica takes the gate"
    );
    // The replica driving the gate dies; the other takes it over once the lease runs out.
    let survivor = if first_drives {
        first.kill_9();
        &second
    } else {
        second.kill_9();
        &first
    };
    call_back(survivor, &requests[0], true, "replica test passed").await;
    let answer = setup.answer(108, survivor).await;
    assert_eq!(answer["state"], "approved");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(service.requests().len(), 1, "two replicas sent the webhook");
    assert_eq!(setup.github.answers().len(), 1, "two replicas answered");
    assert!(
        survivor.log().contains("gate resumed"),
        "{}",
        survivor.log()
    );
    setup.github.assert_no_problems();
    drop(first);
    drop(second);
    schema.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_rejects_a_secret_the_repository_was_not_granted() {
    let service = accepting_service();
    let extra = "";
    let file = deploy_file(&service.url, extra).replace(
        "        value: application/json\n",
        "        value: application/json\n      - key: Authorization\n        value: 'Bearer {{ secrets.API_TOKEN }}'\n",
    );
    let setup = Setup::new(
        &file,
        &format!("{ALLOW_LOCAL}secrets:\n  other/*: [API_TOKEN]\n"),
    )
    .await;
    let (relay, answer) = setup.gate_answer("delivery-secret", 109).await;
    let comment = rejection(&answer);
    assert!(comment.contains("`API_TOKEN`"), "{comment}");
    assert!(comment.contains("not granted to acme/web"), "{comment}");
    assert!(service.requests().is_empty());
    assert!(!relay.log().contains("s3cr3t-api-token-value"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_masks_a_granted_secret_in_comments_and_logs() {
    let service = TestServer::start(|_, _| {
        Reply::status(500).with_body("upstream said s3cr3t-api-token-value")
    });
    let file = deploy_file(&service.url, "    waitFor: none\n").replace(
        "        value: application/json\n",
        "        value: application/json\n      - key: Authorization\n        value: 'Bearer {{ secrets.API_TOKEN }}'\n",
    );
    let setup = Setup::new(
        &file,
        &format!("{ALLOW_LOCAL}secrets:\n  acme/*: [API_TOKEN]\n"),
    )
    .await;
    let (relay, answer) = setup.gate_answer("delivery-mask", 110).await;
    assert_eq!(answer["state"], "rejected");
    let requests = service.requests();
    assert_eq!(
        requests[0].header("authorization"),
        Some("Bearer s3cr3t-api-token-value")
    );
    for (_, review) in setup.github.reviews() {
        assert!(
            !review.to_string().contains("s3cr3t-api-token-value"),
            "{review}"
        );
    }
    assert!(!relay.log().contains("s3cr3t-api-token-value"));
}

/// Runs a gate whose webhook calls `url` and returns the rejection's comment.
async fn outbound_refusal(url: &str, gates_config: &str) -> String {
    let setup = Setup::new(
        &deploy_file(url, "    waitFor: none\n").replace(&format!("{url}/smoke"), url),
        gates_config,
    )
    .await;
    let (_relay, answer) = setup.gate_answer("delivery-ssrf", 111).await;
    assert_eq!(answer["state"], "rejected");
    answer["comment"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_refuses_the_cloud_metadata_address() {
    let comment = outbound_refusal("http://169.254.169.254/latest/meta-data", "").await;
    assert!(
        comment.contains("169.254.169.254 is a link-local address"),
        "{comment}"
    );
    assert!(comment.contains("allowOutbound"), "{comment}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_refuses_a_name_that_resolves_to_loopback() {
    let service = accepting_service();
    let port = service.url.rsplit(':').next().unwrap().to_owned();
    let comment = outbound_refusal(&format!("http://localhost:{port}/smoke"), "").await;
    assert!(comment.contains("`localhost` resolves to"), "{comment}");
    assert!(comment.contains("loopback"), "{comment}");
    assert!(
        service.requests().is_empty(),
        "the refused request reached the service"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_refuses_a_redirect_to_a_private_address() {
    let service = TestServer::start(|_, _| {
        Reply::status(302).with_header("location", "http://10.0.0.7/internal")
    });
    let comment = outbound_refusal(&format!("{}/smoke", service.url), ALLOW_LOCAL).await;
    assert!(
        comment.contains("10.0.0.7 is a private address"),
        "{comment}"
    );
    assert_eq!(service.requests().len(), 1, "the first hop was allowed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_gate_is_taken_at_once_after_a_graceful_restart() {
    let service = accepting_service();
    let mut setup = Setup::new(&deploy_file(&service.url, ""), ALLOW_LOCAL).await;
    // A lease far longer than the test: only giving it up on SIGTERM lets the restart take the
    // gate in time.
    setup.lease = "10m";
    let store = setup.sqlite();
    let mut relay = setup.relay(&store);
    request_gate(&relay, "delivery-term", 113).await;
    let requests = wait_for_requests(&service, 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        relay.terminate(),
        "the relay did not exit cleanly:\n{}",
        relay.log()
    );
    let restarted = setup.relay(&store);
    call_back(&restarted, &requests[0], true, "passed across a restart").await;
    let answer = setup.answer(113, &restarted).await;
    assert_eq!(answer["state"], "approved");
    assert_eq!(service.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_sends_at_most_ten_status_reports_per_gate() {
    let service = TestServer::start(|seen, earlier| match seen.method.as_str() {
        "POST" => Reply::json(json!({"state": "RUNNING", "message": "starting"})),
        _ if earlier.len() < 40 => Reply::json(
            json!({"state": "RUNNING", "message": format!("check {} of 40", earlier.len())}),
        ),
        _ => Reply::json(json!({"state": "SUCCEEDED", "message": "40 of 40"})),
    });
    let extra = "    waitFor: poll\n    poll:\n      statusUrlResolution: getMethod\n      statusJsonPath: $.state\n      successStatuses: [SUCCEEDED]\n      progressJsonPath: $.message\n      interval: 50ms\n";
    let setup = Setup::new(&deploy_file(&service.url, extra), ALLOW_LOCAL).await;
    let (_relay, answer) = setup.gate_answer("delivery-reports", 114).await;
    assert_eq!(answer["state"], "approved");
    assert!(
        service.requests().len() > 20,
        "too few polls to test the limit"
    );
    let reports = setup.github.reviews().len() - 1;
    assert_eq!(reports, 10, "{:?}", setup.github.reviews());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_refuses_an_oversized_delivery() {
    let setup = Setup::new("version: v1\n", "").await;
    let relay = setup.relay(&setup.sqlite());
    let response = reqwest::Client::new()
        .post(format!("{}/github/webhook", relay.url()))
        .header("X-GitHub-Event", "deployment_protection_rule")
        .header("X-GitHub-Delivery", "delivery-huge")
        .header("X-Hub-Signature-256", format!("sha256={}", "0".repeat(64)))
        .body(vec![b' '; 2 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // The relay goes on taking deliveries.
    assert_eq!(
        deliver(&relay, "delivery-after", "ping", &json!({}), None).await,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_sends_its_answer_again_while_github_rate_limits_it() {
    // The status report meets four of them (the client's attempts), the answer's first send
    // the next four, and its second send the last one.
    let refusal = Scripted::new(
        "POST",
        "/deployment_protection_rule",
        429,
        json!({"message": "You have exceeded a secondary rate limit"}),
    )
    .header("retry-after", "1");
    let (_service, setup) = github_refusing_reviews(9, refusal).await;
    let (_relay, answer) = setup.gate_answer("delivery-429", 115).await;
    assert_eq!(answer["state"], "approved");
    assert_eq!(setup.github.answers().len(), 1);
    let limited = setup
        .github
        .calls()
        .into_iter()
        .filter(|c| c.path.ends_with("/deployment_protection_rule") && c.status == 429)
        .count();
    assert_eq!(limited, 9, "the rate limits were not all met");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_gate_killed_while_its_request_is_in_flight_sends_it_again_with_the_same_key() {
    // The first request is answered only after 3 s: the relay is killed before the answer.
    let service = TestServer::start(|_, earlier| {
        if earlier.is_empty() {
            Reply::status(202).after(Duration::from_secs(3))
        } else {
            Reply::status(202)
        }
    });
    let setup = Setup::new(&deploy_file(&service.url, ""), ALLOW_LOCAL).await;
    let store = setup.sqlite();
    let mut relay = setup.relay(&store);
    request_gate(&relay, "delivery-in-flight", 116).await;
    wait_for_requests(&service, 1);
    relay.kill_9();

    let restarted = setup.relay(&store);
    let requests = wait_for_requests(&service, 2);
    let key = |n: usize| requests[n].header("idempotency-key").unwrap().to_owned();
    assert_eq!(key(0), key(1), "sent again under another key");
    // Both requests name the one slot, which the restarted relay still keeps.
    assert_eq!(
        requests[0].json()["callbackUri"],
        requests[1].json()["callbackUri"]
    );
    call_back(&restarted, &requests[1], true, "ok after the repeat").await;
    assert_eq!(setup.answer(116, &restarted).await["state"], "approved");
    assert_eq!(setup.github.answers().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_gate_killed_after_deciding_sends_its_answer_once_without_running_again() {
    // GitHub answers 502 for a while: the status report and the answer meet them.
    let failure = Scripted::new(
        "POST",
        "/deployment_protection_rule",
        502,
        json!({"message": "Server Error"}),
    );
    let (service, setup) = github_refusing_reviews(8, failure).await;
    let store = setup.sqlite();
    let mut relay = setup.relay(&store);
    request_gate(&relay, "delivery-decided", 117).await;
    wait_for_requests(&service, 1);
    let decided = Instant::now() + Duration::from_secs(10);
    while !relay.log().contains("gate decided") {
        assert!(Instant::now() < decided, "{}", relay.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    relay.kill_9();
    assert!(
        setup.github.answers().is_empty(),
        "answered before the kill"
    );

    let restarted = setup.relay(&store);
    assert_eq!(setup.answer(117, &restarted).await["state"], "approved");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(service.requests().len(), 1, "the gate ran again");
    assert_eq!(setup.github.answers().len(), 1);
    assert!(!restarted.log().contains("gate decided"), "decided again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_reads_the_deployment_commits_file_only_where_the_server_allows_it() {
    let service = TestServer::start(|_, _| Reply::status(200));
    let file = deploy_file(&service.url, "    waitFor: none\n");
    let sha = "9fceb02d0ae598e95dc970b74767f19372d61af8";
    // The file exists only at the deployment's commit (a pull request adding it, say).
    let setup = Setup::new("", &format!("{ALLOW_LOCAL}useDeploymentSha: [acme/*]\n")).await;
    setup
        .github
        .set_file(REPOSITORY, "deploy.yml", Some(sha), &file);
    let relay = setup.relay(&setup.sqlite());
    request_gate(&relay, "delivery-sha", 118).await;
    assert_eq!(setup.answer(118, &relay).await["state"], "approved");
    let read: Vec<_> = setup
        .github
        .calls()
        .into_iter()
        .filter(|c| c.path.contains("/contents/"))
        .collect();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].query, format!("ref={sha}"));

    // Without the server's leave, the default branch's file is the gate: here there is none.
    let other = Setup::new("", ALLOW_LOCAL).await;
    other
        .github
        .set_file(REPOSITORY, "deploy.yml", Some(sha), &file);
    let relay = other.relay(&other.sqlite());
    request_gate(&relay, "delivery-default", 119).await;
    let answer = other.answer(119, &relay).await;
    let comment = rejection(&answer);
    assert!(
        comment.contains("no deployment file `deploy.yml` in acme/web on the default branch"),
        "{comment}"
    );
    assert!(
        service.requests().len() == 1,
        "the default branch's absent file ran a gate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_gate_waits_out_a_store_that_refuses_writes_and_is_not_rejected() {
    use sqlx::Connection as _;
    let schema = Schema::create().await;
    let service = accepting_service();
    let setup = Setup::new(&deploy_file(&service.url, ""), ALLOW_LOCAL).await;
    let relay = setup.relay(&schema.store_url());
    request_gate(&relay, "delivery-outage", 120).await;
    let requests = wait_for_requests(&service, 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The gate's records cannot be written for a while: the step's end, the answer's record.
    let mut admin = sqlx::PgConnection::connect(&schema.store_url())
        .await
        .unwrap();
    sqlx::query("ALTER TABLE hookgate_gate_records RENAME TO hookgate_gate_records_away")
        .execute(&mut admin)
        .await
        .unwrap();
    call_back(&relay, &requests[0], true, "passed during the outage").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        setup.github.answers().is_empty(),
        "answered while the store refused writes"
    );
    sqlx::query("ALTER TABLE hookgate_gate_records_away RENAME TO hookgate_gate_records")
        .execute(&mut admin)
        .await
        .unwrap();
    let answer = setup.answer(120, &relay).await;
    assert_eq!(answer["state"], "approved", "{answer}");
    assert!(relay.log().contains("the gate store failed; trying again"));
    drop(admin);
    drop(relay);
    schema.drop_now().await;
}
