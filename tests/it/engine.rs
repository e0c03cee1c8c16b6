//! `hookgate run` end to end: the real binary against real HTTP servers on 127.0.0.1 standing in
//! for the services a deployment file calls (see `support`). What the command line adds to the
//! engine: each wait mode wired up, each way to find a status URL, each status mapping rule,
//! templates and their errors as printed, masking in the log, the job summary and the outputs,
//! exit codes, signals, the embedded relay and GitHub. The engine's own rules (retries,
//! `Retry-After`, fail-fast, `if:`, timeouts, cancellation) are tested in process, in
//! crates/hookgate-engine/tests/rules.rs.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::hookgate;
use crate::support::{Reply, Seen, TestServer, count_to};

/// A deployment file in a temporary directory.
struct Deployment {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn deployment(yaml: &str) -> Deployment {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deploy.yml");
    std::fs::write(&path, yaml).unwrap();
    Deployment { _dir: dir, path }
}

/// Runs `hookgate run` on `file` with `args`; returns the output.
fn run(file: &Deployment, args: &[&str]) -> Output {
    run_env(file, args, &[])
}

/// Runs `hookgate run` on `file` with `args` and environment variables `env`.
fn run_env(file: &Deployment, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = hookgate();
    command.arg("run").arg("--file").arg(&file.path).args(args);
    for (name, value) in env {
        command.env(name, value);
    }
    command.timeout(Duration::from_secs(60)).output().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn code(output: &Output) -> i32 {
    output.status.code().unwrap_or(-1)
}

/// A file with one before-deployment step running webhook `name` defined by `webhook` (YAML
/// lines under `- name: ...`, indented by 4).
fn one_step(name: &str, webhook: &str) -> String {
    format!(
        "application: shop\ntargets:\n  staging:\n    account: staging-cluster\n    namespace: shop-staging\n    constraints:\n      beforeDeployment:\n        - runWebhook:\n            name: {name}\nwebhooks:\n  - name: {name}\n{webhook}"
    )
}

#[test]
fn wait_none_renders_templates_and_succeeds_on_2xx() {
    let server = TestServer::start(|_, _| Reply::status(204));
    let file = deployment(&one_step(
        "notify",
        &format!(
            r#"    method: PUT
    uriTemplate: "{}/notify/{{{{ context.env }}}}?app={{{{ armory.applicationName }}}}"
    waitFor: none
    headers:
      - key: Authorization
        value: "Bearer {{{{ secrets.token }}}}"
      - key: Content-Type
        value: application/json
    bodyTemplate:
      inline: >-
        {{"target": "{{{{ armory.environmentName }}}}", "account": "{{{{ armory.accountName }}}}", "ns": "{{{{ armory.namespace }}}}", "id": "{{{{ armory.deploymentId }}}}"}}
"#,
            server.url
        ),
    ));
    let output = run(
        &file,
        &[
            "--target",
            "staging",
            "--phase",
            "before-deployment",
            "--context",
            "env=blue",
            "--secret",
            "token=tok-123",
        ],
    );
    let out = text(&output);
    assert_eq!(code(&output), 0, "{out}");
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "PUT");
    assert_eq!(request.path, "/notify/blue?app=shop");
    assert_eq!(request.header("authorization"), Some("Bearer tok-123"));
    let body = request.json();
    assert_eq!(body["target"], "staging");
    assert_eq!(body["account"], "staging-cluster");
    assert_eq!(body["ns"], "shop-staging");
    assert!(!body["id"].as_str().unwrap().is_empty());
    assert!(request.header("idempotency-key").is_some());
    assert!(out.contains("notify") && out.contains("success"), "{out}");
}

#[test]
fn time_limits_too_long_for_the_clock_mean_no_limit() {
    let server = TestServer::start(|_, _| Reply::status(204));
    let (output, out) = run_one(
        &server,
        "gate",
        "    waitFor: none\n    timeout: 500000000000y\n",
        &["--timeout", "500000000000y"],
    );
    assert_eq!(code(&output), 0, "{out}");
    assert!(!out.contains("panicked"), "{out}");
    assert_eq!(server.requests_to("/gate").len(), 1);
}

#[test]
fn an_undefined_variable_names_webhook_field_and_variable() {
    let server = TestServer::start(|_, _| Reply::status(200));
    let (output, out) = run_one(
        &server,
        "migrate",
        "    waitFor: none\n    headers:\n      - key: X-Token\n        value: \"{{ secrets.tokn }}\"\n",
        &["--secret", "token=x"],
    );
    assert_eq!(code(&output), 1);
    assert!(
        out.contains("webhook `migrate`, field `headers.X-Token`: `secrets.tokn` is not defined (defined: token)"),
        "{out}"
    );
    assert!(
        server.requests().is_empty(),
        "nothing is sent when a template fails"
    );
}

#[test]
fn secrets_never_reach_the_output() {
    const SECRET: &str = "s3cr3t-Value-93";
    // The service echoes what it got in an error, as many do.
    let server = TestServer::start(|seen, _| {
        Reply::status(400).with_body(&format!(
            "bad token {}",
            seen.header("authorization").unwrap_or("")
        ))
    });
    let file = deployment(&one_step(
        "leaky",
        &format!(
            "    uriTemplate: \"{}/leak?key={{{{ secrets.api }}}}\"\n    waitFor: none\n    headers:\n      - key: Authorization\n        value: \"Bearer {{{{ secrets.api }}}}\"\n",
            server.url
        ),
    ));
    let output = run(
        &file,
        &[
            "--target",
            "staging",
            "--phase",
            "before-deployment",
            "--secret",
            &format!("api={SECRET}"),
        ],
    );
    let out = text(&output);
    assert_eq!(code(&output), 1);
    assert!(
        server.requests()[0].path.contains(SECRET),
        "the secret was sent"
    );
    assert!(!out.contains(SECRET), "the secret leaked:\n{out}");
    assert!(out.contains("bad token Bearer ***"), "{out}");

    // In GitHub Actions the runner is told to mask it before anything else is printed.
    // Nor does it reach the job summary or the step outputs.
    let secrets_file = file.path.with_file_name("secrets.yml");
    std::fs::write(&secrets_file, format!("api: {SECRET}\n")).unwrap();
    let summary = file.path.with_file_name("summary.md");
    let outputs = file.path.with_file_name("outputs.txt");
    let output = run_env(
        &file,
        &[
            "--target",
            "staging",
            "--phase",
            "before-deployment",
            "--secrets-file",
            secrets_file.to_str().unwrap(),
        ],
        &[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap()),
            ("GITHUB_OUTPUT", outputs.to_str().unwrap()),
        ],
    );
    let out = text(&output);
    assert_eq!(code(&output), 1, "{out}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.starts_with(&format!("::add-mask::{SECRET}\n")),
        "{stdout}"
    );
    assert_eq!(text(&output).matches(SECRET).count(), 1, "{out}");
    for written in [&summary, &outputs] {
        let written = std::fs::read_to_string(written).unwrap();
        assert!(written.contains("bad token Bearer ***"), "{written}");
        assert!(!written.contains(SECRET), "the secret leaked:\n{written}");
    }
}

#[test]
fn the_github_token_input_is_masked_like_a_secret() {
    const TOKEN: &str = "ghs_input-t0ken-55";
    let server = TestServer::start(|seen, _| {
        Reply::status(400).with_body(&format!("unknown path {}", seen.path))
    });
    let file = deployment(&one_step(
        "echo",
        &format!(
            "    uriTemplate: \"{}/echo/{{{{ context.value }}}}\"\n    waitFor: none\n",
            server.url
        ),
    ));
    let value = format!("value={TOKEN}");
    let mut args = phase_args().to_vec();
    args.extend(["--context", &value]);
    let output = run_env(&file, &args, &[("INPUT_GITHUB-TOKEN", TOKEN)]);
    let out = text(&output);
    assert_eq!(code(&output), 1, "{out}");
    assert_eq!(server.requests_to(&format!("/echo/{TOKEN}")).len(), 1);
    assert!(out.contains("unknown path /echo/***"), "{out}");
    assert!(!out.contains(TOKEN), "the token leaked:\n{out}");
}

/// A poll webhook whose status answer the handler decides.
fn poll_file(url: &str, poll: &str, extra: &str) -> String {
    one_step(
        "job",
        &format!(
            "    uriTemplate: {url}/job\n    waitFor: poll\n    poll:\n      interval: 50ms\n{poll}{extra}"
        ),
    )
}

fn poll_server(answers: Vec<Reply>) -> TestServer {
    TestServer::start(move |seen, earlier| {
        if seen.method == "POST" {
            return Reply::status(202)
                .with_header("Location", "/status/1")
                .with_json(json!({"links": {"status": "/elsewhere/1"}}));
        }
        let polls = earlier.iter().filter(|r| r.method == "GET").count();
        answers[polls.min(answers.len() - 1)].clone()
    })
}

/// Runs a one-step file whose webhook `name` calls `{server}/{name}` and has the YAML `fields`
/// (indented by 4), with the phase's arguments and `extra` ones.
fn run_one(server: &TestServer, name: &str, fields: &str, extra: &[&str]) -> (Output, String) {
    let file = deployment(&one_step(
        name,
        &format!("    uriTemplate: {}/{name}\n{fields}", server.url),
    ));
    let mut args = phase_args().to_vec();
    args.extend(extra);
    let output = run(&file, &args);
    let out = text(&output);
    (output, out)
}

fn phase_args() -> [&'static str; 4] {
    ["--target", "staging", "--phase", "before-deployment"]
}

/// Runs a one-step poll file whose status answers are `answers` (the last repeats).
fn run_poll(answers: Vec<Reply>, poll: &str) -> (TestServer, Output, String) {
    let server = poll_server(answers);
    let file = deployment(&poll_file(&server.url, poll, ""));
    let output = run(&file, &phase_args());
    let out = text(&output);
    (server, output, out)
}

#[test]
fn poll_by_get_on_the_webhook_url_until_success() {
    let (server, output, out) = run_poll(
        vec![
            Reply::json(json!({"state": "RUNNING", "note": "2 of 3 checks"})),
            Reply::json(json!({"state": "Succeeded", "note": "3 of 3 checks"})),
        ],
        "      statusJsonPath: $.state\n      progressJsonPath: $.note\n      successStatuses: SUCCEEDED\n",
    );
    assert_eq!(code(&output), 0, "{out}");
    let gets: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET")
        .collect();
    assert_eq!(gets.len(), 2);
    assert!(gets.iter().all(|r| r.path == "/job"));
    assert!(out.contains("status `RUNNING`; 2 of 3 checks"), "{out}");
    assert!(out.contains("status `Succeeded`; 3 of 3 checks"), "{out}");
}

#[test]
fn poll_the_location_header_with_percentages() {
    let (server, output, out) = run_poll(
        vec![
            Reply::json(json!({"progress": 40})),
            Reply::json(json!({"progress": 100})),
        ],
        "      statusUrlResolution: locationHeader\n      statusJsonPath: $.progress\n",
    );
    assert_eq!(code(&output), 0, "{out}");
    assert_eq!(server.requests_to("/status/1").len(), 2);
    assert!(out.contains("40% complete"), "{out}");
}

#[test]
fn poll_the_url_in_the_response_until_cancelled() {
    let (server, output, out) = run_poll(
        vec![Reply::json(json!({"state": "canceled"}))],
        "      statusUrlResolution: webhookResponse\n      statusUrlJsonPath: $.links.status\n      statusJsonPath: $.state\n      successStatuses: [DONE]\n      canceledStatuses: [CANCELED]\n",
    );
    assert_eq!(code(&output), 1, "{out}");
    assert_eq!(server.requests_to("/elsewhere/1").len(), 1);
    assert!(out.contains("status `canceled`"), "{out}");
    assert!(out.contains("result: cancelled"), "{out}");
}

#[test]
fn terminal_wins_over_success_when_both_list_a_status() {
    let (_server, output, out) = run_poll(
        vec![Reply::json(json!({"state": "STOPPED"}))],
        "      statusJsonPath: $.state\n      successStatuses: [STOPPED]\n      terminalStatuses: [stopped]\n",
    );
    assert_eq!(code(&output), 1, "{out}");
    assert!(out.contains("status `STOPPED`"), "{out}");
    assert!(out.contains("result: failure"), "{out}");
}

#[test]
fn later_steps_see_the_last_status_answer_of_a_poll() {
    let server = poll_server(vec![
        Reply::json(json!({"state": "RUNNING"})),
        Reply::json(json!({"state": "SUCCEEDED", "report": 42})),
    ]);
    let yaml = format!(
        r#"targets:
  staging:
    constraints:
      beforeDeployment:
        - runWebhook: {{name: job}}
        - runWebhook: {{name: publish}}
webhooks:
  - name: job
    uriTemplate: {url}/job
    waitFor: poll
    poll: {{statusJsonPath: $.state, successStatuses: [SUCCEEDED], interval: 50ms}}
  - name: publish
    uriTemplate: "{url}/publish?report={{{{ steps['job'].poll.report }}}}"
    waitFor: none
"#,
        url = server.url
    );
    let file = deployment(&yaml);
    let output = run(&file, &phase_args());
    let out = text(&output);
    assert_eq!(code(&output), 0, "{out}");
    assert_eq!(
        server.requests_to("/publish?report=42").len(),
        1,
        "{:?}",
        server.requests()
    );
}

#[test]
fn a_status_path_that_finds_nothing_fails_and_says_so() {
    let (_server, output, out) = run_poll(
        vec![Reply::json(json!({"other": 1}))],
        "      statusJsonPath: $.state\n",
    );
    assert_eq!(code(&output), 1);
    assert!(out.contains("`$.state` found nothing"), "{out}");
}

#[test]
fn without_a_status_path_a_2xx_status_answer_is_success() {
    let (server, output, out) =
        run_poll(vec![Reply::status(200)], "      waitBeforeMonitor: 10ms\n");
    assert_eq!(code(&output), 0, "{out}");
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn canary_steps_run_in_order_with_pauses_and_unhandled_steps_reported() {
    let server = TestServer::start(|_, _| Reply::status(200));
    let yaml = format!(
        r#"targets:
  staging:
    strategy: canary
strategies:
  canary:
    canary:
      steps:
        - setWeight: {{weight: 25}}
        - pause: {{duration: 1, unit: seconds}}
        - runWebhook: {{name: health, context: {{env: canary}}}}
        - pause: {{untilApproved: true}}
webhooks:
  - name: health
    uriTemplate: "{url}/health/{{{{ context.env }}}}/{{{{ context.region }}}}/{{{{ github.repository }}}}"
    waitFor: none
"#,
        url = server.url
    );
    let file = deployment(&yaml);
    let started = Instant::now();
    let output = run_env(
        &file,
        &[
            "--target",
            "staging",
            "--phase",
            "strategy",
            "--context",
            "env=blue",
            "--context",
            "region=eu",
        ],
        &[("GITHUB_REPOSITORY", "octo/shop")],
    );
    let out = text(&output);
    assert_eq!(code(&output), 0, "{out}");
    // The step's own context wins over --context; `github.*` comes from the environment.
    assert_eq!(server.requests()[0].path, "/health/canary/eu/octo/shop");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the pause was honoured"
    );
    assert!(
        out.contains("`setWeight` is not handled by hookgate"),
        "{out}"
    );
    assert!(out.contains("manual approval"), "{out}");
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn sigterm_during_a_wait_cancels_and_exits_promptly() {
    let out = signal_during_a_wait("-TERM", Duration::ZERO);
    assert!(out.contains("cancel request answered HTTP 202"), "{out}");
}

#[test]
fn sigint_during_a_wait_cancels_and_exits_promptly() {
    let out = signal_during_a_wait("-INT", Duration::ZERO);
    assert!(out.contains("cancel request answered HTTP 202"), "{out}");
}

#[test]
fn a_hanging_cancel_endpoint_does_not_hold_the_exit() {
    let out = signal_during_a_wait("-TERM", Duration::from_secs(30));
    assert!(
        out.contains("cancel request had no answer within 3s"),
        "{out}"
    );
}

/// Sends `signal` (as `kill` spells it) to a run that is polling, and checks that pending steps
/// end `cancelled`, the cancel request goes out and the process exits within 10 s, even when the
/// cancel endpoint takes `cancel_delay` to answer. Returns the run's output.
fn signal_during_a_wait(signal: &str, cancel_delay: Duration) -> String {
    let server = TestServer::start(move |seen, _| match seen.method.as_str() {
        "GET" => Reply::json(json!({"state": "RUNNING"})),
        _ if seen.path == "/cancel" => Reply::status(202).after(cancel_delay),
        _ => Reply::status(202),
    });
    let yaml = format!(
        r#"targets:
  staging:
    constraints:
      afterDeployment:
        - runWebhook: {{name: tests}}
        - runWebhook: {{name: never}}
webhooks:
  - name: tests
    uriTemplate: {url}/tests
    waitFor: poll
    poll: {{statusJsonPath: $.state, interval: 50ms}}
    cancel: {{uriTemplate: "{url}/cancel"}}
  - name: never
    uriTemplate: {url}/never
    waitFor: none
"#,
        url = server.url
    );
    let file = deployment(&yaml);
    let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin!("hookgate"));
    command
        .arg("run")
        .arg("--file")
        .arg(&file.path)
        .args(["--target", "staging", "--phase", "after-deployment"])
        .env_remove("GITHUB_ACTIONS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = command.spawn().unwrap();
    assert!(
        server.wait_for(Duration::from_secs(20), |log| log
            .iter()
            .any(|r| r.method == "GET")),
        "the run never started polling"
    );
    let signalled = Instant::now();
    let killed = std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let output = child.wait_with_output().unwrap();
    let out = text(&output);
    let took = signalled.elapsed();
    assert!(took < Duration::from_secs(10), "exit took {took:?}");
    assert_eq!(code(&output), 1, "{out}");
    assert!(out.contains("cancelled: the run was cancelled"), "{out}");
    assert!(out.contains("not run: `tests` ended `cancelled`"), "{out}");
    assert_eq!(server.requests_to("/cancel").len(), 1);
    assert!(server.requests_to("/never").is_empty());
    out
}

#[test]
fn in_actions_a_callback_step_without_a_relay_is_a_configuration_error() {
    let file = deployment(&one_step(
        "approve",
        "    uriTemplate: http://127.0.0.1:9/a\n",
    ));
    let output = run_env(&file, &phase_args(), &[("GITHUB_ACTIONS", "true")]);
    let out = text(&output);
    assert_eq!(code(&output), 2, "{out}");
    assert!(out.contains("no relay is configured"), "{out}");
}

/// The environment that points `hookgate run` at a stand-in for GitHub's API.
fn github_env(api_url: &str) -> [(&str, &str); 2] {
    [
        ("GITHUB_TOKEN", "ghs_testtoken"),
        ("GITHUB_API_URL", api_url),
    ]
}

/// A stand-in for GitHub's REST API.
fn github_server(run_states: Vec<(&'static str, Option<&'static str>)>) -> TestServer {
    TestServer::start(move |seen, earlier| {
        if seen.path.ends_with("/dispatches") && seen.path.contains("/workflows/") {
            return Reply::json(json!({
                "workflow_run_id": 4242,
                "run_url": "https://api.github.example/repos/o/tests/actions/runs/4242",
                "html_url": "https://github.example/o/tests/actions/runs/4242"
            }));
        }
        if seen.path.ends_with("/dispatches") {
            return Reply::status(502);
        }
        let reads = count_to(earlier, &seen.path);
        let (status, conclusion) = run_states[reads.min(run_states.len() - 1)];
        Reply::json(
            json!({"status": status, "conclusion": conclusion, "html_url": "https://github.example/o/tests/actions/runs/4242"}),
        )
    })
}

#[test]
fn workflow_dispatch_follows_the_run_to_its_conclusion() {
    let github = github_server(vec![
        ("queued", None),
        ("in_progress", None),
        ("completed", Some("success")),
    ]);
    let file = deployment(&one_step(
        "load-test",
        "    workflowDispatch:\n      repository: o/tests\n      workflow: load.yml\n      ref: main\n      inputs:\n        target: \"{{ armory.environmentName }}\"\n    waitFor: workflowRun\n    poll: {interval: 50ms}\n",
    ));
    let output = run_env(&file, &phase_args(), &github_env(&github.url));
    let out = text(&output);
    assert_eq!(code(&output), 0, "{out}");
    let requests = github.requests();
    let dispatch = &requests[0];
    assert_eq!(dispatch.method, "POST");
    assert_eq!(
        dispatch.path,
        "/repos/o/tests/actions/workflows/load.yml/dispatches"
    );
    assert_eq!(
        dispatch.header("authorization"),
        Some("Bearer ghs_testtoken")
    );
    assert_eq!(
        dispatch.header("accept"),
        Some("application/vnd.github+json")
    );
    assert_eq!(dispatch.header("x-github-api-version"), Some("2022-11-28"));
    assert_eq!(
        dispatch.json(),
        json!({"ref": "main", "inputs": {"target": "staging"}, "return_run_details": true})
    );
    assert_eq!(
        github.requests_to("/repos/o/tests/actions/runs/4242").len(),
        3
    );
    assert!(!out.contains("ghs_testtoken"));
}

#[test]
fn a_rate_limited_read_of_the_workflow_run_waits_as_github_asks() {
    let github = TestServer::start(|seen, earlier| {
        if seen.path.ends_with("/dispatches") {
            return Reply::json(json!({"workflow_run_id": 4242}));
        }
        if count_to(earlier, &seen.path) == 0 {
            return Reply::status(403)
                .with_header("Retry-After", "1")
                .with_json(json!({"message": "You have exceeded a secondary rate limit"}));
        }
        Reply::json(json!({"status": "completed", "conclusion": "success"}))
    });
    let file = deployment(&one_step(
        "load-test",
        "    workflowDispatch:\n      repository: o/tests\n      workflow: load.yml\n      ref: main\n    waitFor: workflowRun\n    poll: {interval: 50ms}\n",
    ));
    let output = run_env(&file, &phase_args(), &github_env(&github.url));
    let out = text(&output);
    assert_eq!(code(&output), 0, "{out}");
    let reads = github.requests_to("/repos/o/tests/actions/runs/4242");
    assert_eq!(reads.len(), 2, "{out}");
    let gap = reads[1].at.duration_since(reads[0].at);
    assert!(
        gap >= Duration::from_millis(950),
        "read again after {gap:?}"
    );
}

#[test]
fn a_repository_dispatch_is_never_sent_twice_after_a_server_error() {
    let github = github_server(vec![]);
    let file = deployment(&one_step(
        "tests",
        "    repositoryDispatch:\n      repository: o/tests\n      eventType: run-tests\n    waitFor: none\n    retryCount: 3\n",
    ));
    let output = run_env(&file, &phase_args(), &github_env(&github.url));
    let out = text(&output);
    assert_eq!(code(&output), 1, "{out}");
    assert_eq!(github.requests_to("/repos/o/tests/dispatches").len(), 1);
    assert!(out.contains("HTTP 502"), "{out}");
}

/// A service that takes the webhook and answers through `hookgate callback` (the real other
/// side) with each of `callbacks` in turn: extra arguments such as `--token T --success true`.
fn calling_back(callbacks: Vec<Vec<String>>) -> TestServer {
    TestServer::start(move |seen, _| {
        let body = seen.json();
        let url = body["callbackUri"].as_str().unwrap_or_default().to_owned();
        let token = body["token"].as_str().unwrap_or_default().to_owned();
        let callbacks = callbacks.clone();
        std::thread::spawn(move || {
            for args in callbacks {
                let args: Vec<String> = args
                    .into_iter()
                    .map(|a| a.replace("{token}", &token))
                    .collect();
                let status = std::process::Command::new(assert_cmd::cargo::cargo_bin!("hookgate"))
                    .args(["callback", "--url", &url])
                    .args(&args)
                    .status()
                    .unwrap();
                assert!(status.success(), "hookgate callback {args:?} failed");
            }
        });
        Reply::status(202)
    })
}

#[test]
fn wait_for_a_bearer_callback_through_the_embedded_relay() {
    let service = calling_back(vec![vec![
        "--token".into(),
        "{token}".into(),
        "--success".into(),
        "false".into(),
        "--message".into(),
        "**smoke**: 1 test failed".into(),
    ]]);
    let file = deployment(&one_step(
        "tests",
        &format!(
            "    uriTemplate: {}/tests\n    bodyTemplate:\n      inline: '{{\"callbackUri\": \"{{{{ armory.callbackUri }}}}/callback\", \"token\": \"{{{{ callback.token }}}}\"}}'\n",
            service.url
        ),
    ));
    let output = run(&file, &phase_args());
    let out = text(&output);
    assert_eq!(code(&output), 1, "{out}");
    assert!(out.contains("**smoke**: 1 test failed"), "{out}");
    assert!(out.contains("embedded relay"), "{out}");
    // A JSON body without a declared type goes out as JSON.
    assert_eq!(
        service.requests()[0].header("content-type"),
        Some("application/json")
    );
    let sent = service.requests()[0].json();
    assert!(
        !out.contains(sent["token"].as_str().unwrap()),
        "the slot token leaked: {out}"
    );
}

/// Runs one gate that calls `service` and waits for a callback signed GitHub's way with `secret`.
fn run_hmac_approval(service: &TestServer, secret: &str) -> std::process::Output {
    let file = deployment(&one_step(
        "approve",
        &format!(
            "    uriTemplate: {}/approve\n    bodyTemplate:\n      inline: '{{\"callbackUri\": \"{{{{ callback.uri }}}}\"}}'\n    callback:\n      auth: hmac\n      scheme: github\n      secret: \"{{{{ secrets.hmac }}}}\"\n",
            service.url
        ),
    ));
    let mut args = phase_args().to_vec();
    let secret_arg = format!("hmac={secret}");
    args.extend(["--secret", &secret_arg]);
    run(&file, &args)
}

#[test]
fn hmac_callbacks_are_verified_and_forgeries_ignored() {
    let secret = "shared-hmac-secret";
    let service = calling_back(vec![
        vec![
            "--hmac-secret".into(),
            "not-the-secret".into(),
            "--scheme".into(),
            "github".into(),
            "--success".into(),
            "true".into(),
            "--message".into(),
            "forged".into(),
        ],
        vec![
            "--hmac-secret".into(),
            secret.into(),
            "--scheme".into(),
            "github".into(),
            "--success".into(),
            "true".into(),
            "--message".into(),
            "approved by the change board".into(),
        ],
    ]);
    let output = run_hmac_approval(&service, secret);
    let out = text(&output);
    assert_eq!(code(&output), 0, "{out}");
    assert!(
        out.contains("ignored callback #1: its github signature does not verify"),
        "{out}"
    );
    assert!(out.contains("approved by the change board"), "{out}");
    assert!(!out.contains(secret), "{out}");
}

/// The attack of a verdict moved between runs: a genuine success signed with the shared secret
/// for another run's slot is posted to this run's callback URL (the relay takes it: it holds no
/// secret), then this run's service says no. The gate takes only the verdict made for its slot.
#[test]
fn a_signed_success_of_another_run_never_passes_this_one() {
    let secret = "one-secret-for-every-run";
    let hmac = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = ["--hmac-secret", secret, "--scheme", "github"]
            .iter()
            .map(|a| (*a).to_owned())
            .collect();
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        args
    };
    let service = calling_back(vec![
        hmac(&[
            "--slot",
            "019ad3c0c0007000800000000000beef",
            "--success",
            "true",
            "--message",
            "passed in another run",
        ]),
        hmac(&["--success", "false", "--message", "the service says no"]),
    ]);
    let output = run_hmac_approval(&service, secret);
    let out = text(&output);
    assert_eq!(code(&output), 1, "{out}");
    assert!(
        out.contains(
            "ignored callback #1: it was signed for slot 019ad3c0c0007000800000000000beef"
        ),
        "{out}"
    );
    assert!(out.contains("the service says no"), "{out}");
    assert!(!out.contains("passed in another run"), "{out}");
}

/// A `hookgate relay` process on a free port with a throw-away store; killed when dropped.
struct RelayProcess {
    child: std::process::Child,
    url: String,
}

impl RelayProcess {
    fn start(token: &str) -> Self {
        use std::io::BufRead as _;
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin!("hookgate"))
            .args([
                "relay",
                "--listen",
                "127.0.0.1:0",
                "--store",
                "sqlite::memory:",
            ])
            .args(["--relay-token", token])
            .env_remove("RUST_LOG")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut lines = std::io::BufReader::new(stderr).lines();
        let url = loop {
            let line = lines.next().expect("the relay exited").unwrap();
            if let Some(at) = line.find("public_url=") {
                break line[at + "public_url=".len()..]
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .to_owned();
            }
        };
        // Keep draining stderr so the relay never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        RelayProcess { child, url }
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn callbacks_through_a_relay_process_and_a_refused_relay_token() {
    let relay = RelayProcess::start("relay-token-for-tests");
    let service = calling_back(vec![vec![
        "--token".into(),
        "{token}".into(),
        "--success".into(),
        "true".into(),
        "--message".into(),
        "migrated 3 tables".into(),
    ]]);
    let file = deployment(&one_step(
        "migrate",
        &format!(
            "    uriTemplate: {}/migrate\n    bodyTemplate:\n      inline: '{{\"callbackUri\": \"{{{{ callback.uri }}}}\", \"token\": \"{{{{ callback.token }}}}\"}}'\n",
            service.url
        ),
    ));
    let mut args = phase_args().to_vec();
    args.extend([
        "--relay",
        &relay.url,
        "--relay-token",
        "relay-token-for-tests",
    ]);
    let output = run(&file, &args);
    let out = text(&output);
    assert_eq!(code(&output), 0, "{out}");
    assert!(out.contains("migrated 3 tables"), "{out}");
    assert!(
        service.requests()[0].json()["callbackUri"]
            .as_str()
            .unwrap()
            .starts_with(&relay.url)
    );
    assert!(!out.contains("relay-token-for-tests"), "{out}");

    let mut args = phase_args().to_vec();
    args.extend(["--relay", &relay.url, "--relay-token", "not-the-token"]);
    let output = run(&file, &args);
    let out = text(&output);
    assert_eq!(code(&output), 1, "{out}");
    assert!(
        out.contains("the relay refused to open a callback slot"),
        "{out}"
    );
    assert_eq!(
        service.requests().len(),
        1,
        "nothing is called without a slot"
    );
}

#[test]
fn a_busy_status_endpoint_is_polled_again_after_its_retry_after() {
    let (server, output, out) = run_poll(
        vec![
            Reply::status(503).with_header("Retry-After", "1"),
            Reply::json(json!({"state": "SUCCEEDED"})),
        ],
        "      statusJsonPath: $.state\n      successStatuses: SUCCEEDED\n",
    );
    assert_eq!(code(&output), 0, "{out}");
    let polls: Vec<Seen> = server
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET")
        .collect();
    assert_eq!(polls.len(), 2);
    let gap = polls[1].at.duration_since(polls[0].at);
    assert!(
        gap >= Duration::from_millis(950),
        "polled again after {gap:?}"
    );
    assert!(
        out.contains(
            "status check answered HTTP 503; will retry (1 of 20 failures in a row allowed)"
        ),
        "{out}"
    );
}

/// A one-step repository dispatch (webhook lines `fields`) whose first send GitHub refuses with
/// `refusal`, and which succeeds after: checks it is sent twice, a second apart, and returns the
/// requests GitHub saw and the run's output.
fn dispatch_after_a_rate_limit(refusal: Reply, fields: &str) -> (Vec<Seen>, String) {
    let refusal = std::sync::Mutex::new(Some(refusal));
    let github = TestServer::start(move |_, _| {
        refusal
            .lock()
            .unwrap()
            .take()
            .unwrap_or_else(|| Reply::status(204))
    });
    let file = deployment(&one_step(
        "tests",
        &format!(
            "    repositoryDispatch:\n      repository: o/tests\n      eventType: run-tests\n{fields}"
        ),
    ));
    let output = run_env(&file, &phase_args(), &github_env(&github.url));
    let out = text(&output);
    assert_eq!(code(&output), 0, "{out}");
    let sent = github.requests_to("/repos/o/tests/dispatches");
    assert_eq!(sent.len(), 2, "{out}");
    assert!(sent[1].at.duration_since(sent[0].at) >= Duration::from_millis(950));
    (sent, out)
}

#[test]
fn a_rate_limited_dispatch_is_sent_again_after_retry_after() {
    let (sent, out) = dispatch_after_a_rate_limit(
        Reply::status(403)
            .with_header("Retry-After", "1")
            .with_json(json!({"message": "You have exceeded a secondary rate limit"})),
        "      clientPayload:\n        environment: \"{{ armory.environmentName }}\"\n    disableCallback: true\n    retryCount: 2\n",
    );
    assert_eq!(
        sent[1].json(),
        json!({"event_type": "run-tests", "client_payload": {"environment": "staging"}})
    );
    assert!(
        out.contains("tests started (waiting by none)"),
        "disableCallback: true waits for nothing: {out}"
    );
}

#[test]
fn a_rate_limited_dispatch_is_sent_again_even_without_retry_count() {
    let (_, out) = dispatch_after_a_rate_limit(
        Reply::status(429).with_header("Retry-After", "1"),
        "    waitFor: none\n",
    );
    assert!(out.contains("rate limited"), "{out}");
}

/// A webhook of Armory's Remote Network Agent example, pointed at `url`: its headers carry
/// `armory.replicaSetName` and `armory.preview.ledger`.
fn remote_network_agent_file(url: &str) -> String {
    one_step(
        "smoke-tests",
        &format!(
            "    uriTemplate: {url}/suites/smoke\n    waitFor: none\n    networkMode: remoteNetworkAgent\n    agentIdentifier: lab-agent\n    headers:\n      - key: X-Replica-Set\n        value: \"{{{{ armory.replicaSetName }}}}\"\n      - key: X-Preview\n        value: \"{{{{ armory.preview.ledger }}}}\"\n"
        ),
    )
}

#[test]
fn a_remote_network_agent_webhook_is_called_directly_with_a_warning_annotation() {
    let server = TestServer::start(|_, _| Reply::status(204));
    let file = deployment(&remote_network_agent_file(&server.url));
    let mut args = phase_args().to_vec();
    args.extend([
        "--armory",
        "replicaSetName=ledger-7f9c",
        "--armory",
        "preview.ledger=https://preview.example/ledger",
    ]);
    let output = run_env(&file, &args, &[("GITHUB_ACTIONS", "true")]);
    let out = text(&output);
    assert_eq!(code(&output), 0, "{out}");
    let calls = server.requests_to("/suites/smoke");
    assert_eq!(calls.len(), 1, "{:?}", server.requests());
    assert_eq!(calls[0].header("x-replica-set"), Some("ledger-7f9c"));
    assert_eq!(
        calls[0].header("x-preview"),
        Some("https://preview.example/ledger")
    );
    let warning = out
        .lines()
        .find(|line| line.starts_with("::warning file="))
        .unwrap_or_else(|| panic!("no warning annotation:\n{out}"));
    assert!(
        warning.contains("networkMode: remoteNetworkAgent"),
        "{warning}"
    );
    assert!(warning.contains("agent `lab-agent`"), "{warning}");

    // The same values through the action's `armory` input.
    let output = hookgate()
        .arg("action")
        .env("INPUT_COMMAND", "run")
        .env("INPUT_DEPLOYMENT-FILE", &file.path)
        .env("INPUT_TARGET", "staging")
        .env("INPUT_PHASE", "before-deployment")
        .env(
            "INPUT_ARMORY",
            "{replicaSetName: ledger-8a1d, preview.ledger: 'https://preview.example/2'}",
        )
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(code(&output), 0, "{}", text(&output));
    let calls = server.requests_to("/suites/smoke");
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].header("x-replica-set"), Some("ledger-8a1d"));
    assert_eq!(
        calls[1].header("x-preview"),
        Some("https://preview.example/2")
    );
}

#[test]
fn an_armory_value_the_workflow_did_not_pass_is_named_with_the_flag_to_pass_it() {
    let server = TestServer::start(|_, _| Reply::status(204));
    let file = deployment(&remote_network_agent_file(&server.url));
    let output = run(&file, &phase_args());
    let out = text(&output);
    assert_eq!(code(&output), 1, "{out}");
    assert!(
        out.contains("`armory.replicaSetName` is not defined")
            && out.contains("pass it with `--armory replicaSetName=NAME`"),
        "{out}"
    );
    assert!(server.requests().is_empty(), "nothing is sent");

    let mut args = phase_args().to_vec();
    args.extend(["--armory", "namespace=other"]);
    let output = run(&file, &args);
    let out = text(&output);
    assert_eq!(code(&output), 2, "{out}");
    assert!(out.contains("`armory.namespace` cannot be passed"), "{out}");
}

/// The loop with progress and outputs: the service reports progress with `hookgate callback
/// --progress`, then passes with `--output`; the run (in Actions, with a relay process) shows the
/// progress, a later step reads the output as `steps['tests'].outputs.report`, and each output is
/// a step output.
#[test]
fn progress_callbacks_are_shown_and_outputs_reach_later_steps_and_the_step_outputs() {
    let relay = RelayProcess::start("relay-token-for-tests");
    let publisher = TestServer::start(|_, _| Reply::status(204));
    let service = calling_back(vec![
        vec![
            "--token".into(),
            "{token}".into(),
            "--progress".into(),
            "**3 of 9** suites passed".into(),
            "--output".into(),
            "stage=suites".into(),
        ],
        vec![
            "--token".into(),
            "{token}".into(),
            "--success".into(),
            "true".into(),
            "--output".into(),
            "report=https://ci.example/runs/7".into(),
            "--output".into(),
            "stage=done".into(),
        ],
    ]);
    let yaml = format!(
        r#"targets:
  staging:
    constraints:
      beforeDeployment:
        - runWebhook: {{name: tests}}
        - runWebhook: {{name: publish}}
webhooks:
  - name: tests
    uriTemplate: {url}/tests
    bodyTemplate:
      inline: '{{"callbackUri": "{{{{ armory.callbackUri }}}}", "token": "{{{{ callback.token }}}}"}}'
  - name: publish
    uriTemplate: "{publish}/publish?report={{{{ steps['tests'].outputs.report | urlencode }}}}&stage={{{{ steps['tests'].outputs.stage }}}}"
    waitFor: none
"#,
        url = service.url,
        publish = publisher.url
    );
    let file = deployment(&yaml);
    let outputs = file.path.with_file_name("outputs.txt");
    let mut args = phase_args().to_vec();
    args.extend([
        "--relay",
        &relay.url,
        "--relay-token",
        "relay-token-for-tests",
    ]);
    let output = run_env(
        &file,
        &args,
        &[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_OUTPUT", outputs.to_str().unwrap()),
        ],
    );
    let out = text(&output);
    assert_eq!(code(&output), 0, "{out}");
    assert!(out.contains("**3 of 9** suites passed"), "{out}");
    assert_eq!(
        publisher
            .requests_to("/publish?report=https%3A//ci.example/runs/7&stage=done")
            .len(),
        1,
        "{:?}",
        publisher.requests()
    );
    let written = std::fs::read_to_string(&outputs).unwrap();
    let value_of = |name: &str| {
        let start = written
            .find(&format!("{name}<<"))
            .unwrap_or_else(|| panic!("no output {name}:\n{written}"));
        written[start..]
            .lines()
            .nth(1)
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(value_of("report"), "https://ci.example/runs/7");
    assert_eq!(value_of("stage"), "done");
    let by_step: serde_json::Value = serde_json::from_str(&value_of("outputs")).unwrap();
    assert_eq!(
        by_step,
        json!({"tests": {"report": "https://ci.example/runs/7", "stage": "done"}})
    );
}
