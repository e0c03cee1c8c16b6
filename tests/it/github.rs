//! GitHub reporting against a fake GitHub API ([`crate::fake_github`]) that checks every request
//! and answer against GitHub's OpenAPI description: check runs for pull-request gates,
//! deployment statuses, App authentication, rate limits, the job summary and the outputs.
//!
//! The reporters get the events a run emits, in the order the engine sends them, inside a
//! simulated Actions environment (the `GITHUB_*` variables, `INPUT_*` inputs and the runner's
//! files in a temporary folder).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use hookgate_engine::{Conclusion, Event, Reporter, StepInfo, StepOutcome};
use hookgate_github::Actions;
use hookgate_github::client::RetryPolicy;
use hookgate_github::context::GithubContext;
use serde_json::{Value, json};

use crate::fake_github::{APP_ID, FakeGithub, Scripted, app_private_key};

const TOKEN: &str = "ghs_job_token_for_tests";
const HEAD_SHA: &str = "1111111111111111111111111111111111111111";
const MERGE_SHA: &str = "2222222222222222222222222222222222222222";
const RUN_URL: &str = "https://github.com/octo/app/actions/runs/9001";

/// The runner's environment and files for one job.
struct Runner {
    dir: tempfile::TempDir,
    vars: HashMap<String, String>,
}

impl Runner {
    /// A `pull_request` job of `octo/app` whose head is [`HEAD_SHA`].
    fn pull_request(fake: &FakeGithub) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let event = dir.path().join("event.json");
        std::fs::write(
            &event,
            json!({"action": "synchronize", "number": 7,
                   "pull_request": {"number": 7, "head": {"sha": HEAD_SHA, "ref": "feature"}}})
            .to_string(),
        )
        .unwrap();
        let summary = dir.path().join("step_summary.md");
        let output = dir.path().join("output.txt");
        std::fs::write(&summary, "").unwrap();
        std::fs::write(&output, "").unwrap();
        let mut vars = HashMap::new();
        for (k, v) in [
            ("CI", "true"),
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_API_URL", fake.url.as_str()),
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("GITHUB_REPOSITORY", "octo/app"),
            ("GITHUB_SHA", MERGE_SHA),
            ("GITHUB_EVENT_NAME", "pull_request"),
            ("GITHUB_EVENT_PATH", event.to_str().unwrap()),
            ("GITHUB_RUN_ID", "9001"),
            ("GITHUB_RUN_ATTEMPT", "1"),
            ("GITHUB_JOB", "gate"),
            ("GITHUB_WORKFLOW", "CI"),
            ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap()),
            ("GITHUB_OUTPUT", output.to_str().unwrap()),
            ("INPUT_GITHUB-TOKEN", TOKEN),
            ("INPUT_DEPLOYMENT-STATUS", "false"),
        ] {
            vars.insert(k.to_owned(), v.to_owned());
        }
        Runner { dir, vars }
    }

    fn set(&mut self, key: &str, value: &str) -> &mut Self {
        self.vars.insert(key.to_owned(), value.to_owned());
        self
    }

    fn unset(&mut self, key: &str) -> &mut Self {
        self.vars.remove(key);
        self
    }

    fn actions(&self) -> Actions {
        let ctx = GithubContext::from_lookup(&|k| self.vars.get(k).cloned()).unwrap();
        let policy = RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(50),
            max_wait: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
        };
        Actions::new(ctx, policy)
            .unwrap()
            .with_progress_interval(Duration::from_secs(3600))
    }

    fn summary_path(&self) -> PathBuf {
        self.dir.path().join("step_summary.md")
    }

    fn output_path(&self) -> PathBuf {
        self.dir.path().join("output.txt")
    }
}

/// Parses `$GITHUB_OUTPUT` as the runner does: `name=value` lines and `name<<delimiter` blocks.
pub fn parse_outputs(path: &Path) -> HashMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut outputs = HashMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some((name, delimiter)) = line.split_once("<<") {
            let mut value = Vec::new();
            loop {
                let next = lines
                    .next()
                    .expect("an output block ends with its delimiter");
                if next == delimiter {
                    break;
                }
                value.push(next);
            }
            outputs.insert(name.to_owned(), value.join("\n"));
        } else if let Some((name, value)) = line.split_once('=') {
            outputs.insert(name.to_owned(), value.to_owned());
        }
    }
    outputs
}

fn step(name: &str, index: usize, wait_mode: &str) -> StepInfo {
    StepInfo {
        name: name.to_owned(),
        index,
        group: index,
        kind: "webhook".to_owned(),
        wait_mode: wait_mode.to_owned(),
    }
}

fn outcome(conclusion: Conclusion, message: &str, millis: u64) -> StepOutcome {
    StepOutcome::new(
        conclusion,
        message.to_owned(),
        Some(SystemTime::now()),
        Duration::from_millis(millis),
    )
}

/// Sends `events` to every reporter, in order, as the engine does.
async fn deliver(reporters: &[Box<dyn Reporter>], events: &[Event]) {
    for event in events {
        for reporter in reporters {
            reporter.report(event).await;
        }
    }
}

/// A run of `steps`, each started, given one progress line and finished with its outcome.
fn run_events(target: &str, phase: &str, steps: &[(StepInfo, StepOutcome)]) -> Vec<Event> {
    let mut events = vec![Event::RunStarted {
        target: target.to_owned(),
        phase: phase.to_owned(),
        steps: steps.iter().map(|(s, _)| s.clone()).collect(),
    }];
    for (info, outcome) in steps {
        if outcome.started_at.is_some() {
            events.push(Event::StepStarted { step: info.clone() });
            events.push(Event::StepProgress {
                step: info.clone(),
                message: format!("{} status: RUNNING", info.name),
                percent: Some(40),
            });
        }
        events.push(Event::StepFinished {
            step: info.clone(),
            outcome: outcome.clone(),
        });
    }
    let conclusion = steps
        .iter()
        .map(|(_, o)| o.conclusion)
        .find(|c| !c.is_passing())
        .unwrap_or(Conclusion::Success);
    events.push(Event::RunFinished {
        conclusion,
        outcomes: steps.to_vec(),
    });
    events
}

/// A run of one callback step, `Approve`, that passes.
fn one_passing_step() -> Vec<Event> {
    let steps = vec![(
        step("Approve", 0, "callback"),
        outcome(Conclusion::Success, "ok", 10),
    )];
    run_events("staging", "beforeDeployment", &steps)
}

/// A fake whose next matching request gets `scripted`, and one passing step reported to it.
async fn one_step_after(scripted: Scripted) -> (FakeGithub, Runner) {
    let fake = FakeGithub::start(TOKEN).await;
    fake.script(scripted);
    let runner = Runner::pull_request(&fake);
    let reporters = runner.actions().reporters();
    deliver(&reporters, &one_passing_step()).await;
    (fake, runner)
}

/// One passing step reported as deployment statuses only.
async fn report_one_step_to_deployments(fake: &FakeGithub) {
    let mut runner = Runner::pull_request(fake);
    runner
        .set("INPUT_DEPLOYMENT-STATUS", "true")
        .set("INPUT_CHECK-RUNS", "false");
    let reporters = runner.actions().reporters();
    deliver(&reporters, &one_passing_step()).await;
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn check_named<'a>(runs: &'a [Value], name: &str) -> &'a Value {
    runs.iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no check run `{name}` in {runs:#?}"))
}

fn calls_to(fake: &FakeGithub, method: &str, path_part: &str) -> Vec<crate::fake_github::Call> {
    fake.calls()
        .into_iter()
        .filter(|c| c.method == method && c.path.contains(path_part))
        .collect()
}

#[tokio::test]
async fn a_passing_pull_request_gate_completes_its_checks_on_the_head_commit() {
    let fake = FakeGithub::start(TOKEN).await;
    let mut runner = Runner::pull_request(&fake);
    runner.set("INPUT_AGGREGATE-CHECK", "true");
    let reporters = runner.actions().reporters();
    let steps = vec![
        (
            step("Migrate", 0, "poll"),
            outcome(Conclusion::Success, "status: SUCCEEDED", 1200),
        ),
        (
            step("Approve", 1, "callback"),
            outcome(Conclusion::Success, "**Approved** by alice", 65_000),
        ),
    ];
    deliver(
        &reporters,
        &run_events("staging", "beforeDeployment", &steps),
    )
    .await;

    fake.assert_no_problems();
    let runs = fake.check_runs();
    assert_eq!(runs.len(), 3, "{runs:#?}");
    for run in &runs {
        assert_eq!(
            run["head_sha"], HEAD_SHA,
            "the PR's head, not the merge commit"
        );
        assert_eq!(run["status"], "completed");
        assert_eq!(run["conclusion"], "success");
        assert_eq!(run["details_url"], RUN_URL);
    }
    let approve = check_named(&runs, "hookgate / staging / Approve");
    assert_eq!(approve["output"]["summary"], "**Approved** by alice");
    assert!(
        approve["output"]["title"]
            .as_str()
            .unwrap()
            .contains("Passed in 1m 5s")
    );
    assert_eq!(approve["external_id"], "9001.1.1");
    let migrate = check_named(&runs, "hookgate / staging / Migrate");
    assert!(
        migrate["output"]["text"]
            .as_str()
            .unwrap()
            .contains("40% · Migrate status: RUNNING"),
        "progress is kept in the text: {migrate:#?}"
    );
    let aggregate = check_named(&runs, "hookgate / staging");
    assert!(
        aggregate["output"]["summary"]
            .as_str()
            .unwrap()
            .contains("| Approve | ✅ success | 1m 5s | **Approved** by alice |")
    );

    // Created queued, then in progress, then completed; the progress update was throttled.
    let creates = calls_to(&fake, "POST", "/check-runs");
    assert_eq!(creates.len(), 3);
    assert_eq!(creates[0].body["status"], "queued");
    let migrate_id = migrate["id"].as_u64().unwrap();
    let updates = calls_to(&fake, "PATCH", &format!("/check-runs/{migrate_id}"));
    let statuses: Vec<&str> = updates
        .iter()
        .map(|c| c.body["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["in_progress", "completed"]);
    assert!(
        fake.calls()
            .iter()
            .all(|c| c.authorization == format!("Bearer {TOKEN}"))
    );

    let outputs = parse_outputs(&runner.output_path());
    assert_eq!(outputs["result"], "success");
    assert_eq!(outputs["message"], "2 of 2 gate(s) passed");
    let results: Value = serde_json::from_str(&outputs["results"]).unwrap();
    assert_eq!(results[1]["name"], "Approve");
    assert_eq!(results[1]["conclusion"], "success");
    assert_eq!(results[1]["durationMs"], 65_000);
    let summary = std::fs::read_to_string(runner.summary_path()).unwrap();
    assert!(summary.contains("| Webhook | Wait mode | Result | Duration | Message |"));
    assert!(summary.contains("| Migrate | poll | ✅ success | 1s | status: SUCCEEDED |"));
    assert!(summary.contains(&format!("[Workflow run]({RUN_URL})")));
}

#[tokio::test]
async fn a_failing_pull_request_gate_fails_its_check_and_cuts_long_text() {
    let fake = FakeGithub::start(TOKEN).await;
    let mut runner = Runner::pull_request(&fake);
    runner.set("INPUT_CHECK-NAME", "gate: {target}/{step}");
    let reporters = runner
        .actions()
        .with_progress_interval(Duration::ZERO)
        .reporters();
    let report = format!(
        "3 tests failed\n\n{}",
        "- `checkout` timed out ✗\n".repeat(3_000)
    );
    assert!(report.len() > 65_535);
    let steps = vec![
        (
            step("Tests", 0, "callback"),
            outcome(Conclusion::Failure, &report, 3_000),
        ),
        (
            step("Scan", 1, "none"),
            StepOutcome::new(
                Conclusion::Cancelled,
                "not run: `Tests` ended `failure`".to_owned(),
                None,
                Duration::ZERO,
            ),
        ),
    ];
    deliver(
        &reporters,
        &run_events("staging", "afterDeployment", &steps),
    )
    .await;

    fake.assert_no_problems();
    let runs = fake.check_runs();
    assert_eq!(runs.len(), 2);
    let tests = check_named(&runs, "gate: staging/Tests");
    assert_eq!(tests["conclusion"], "failure");
    let summary = tests["output"]["summary"].as_str().unwrap();
    assert!(summary.starts_with("3 tests failed"));
    assert!(summary.len() <= 65_535, "{} bytes", summary.len());
    assert!(summary.contains("cut to fit GitHub's limit"));
    assert!(
        tests["output"]["title"]
            .as_str()
            .unwrap()
            .contains("Failed")
    );
    let scan = check_named(&runs, "gate: staging/Scan");
    assert_eq!(scan["conclusion"], "cancelled");
    assert_eq!(
        scan["output"]["summary"],
        "not run: `Tests` ended `failure`"
    );
    // With no throttle the progress line was its own update.
    let tests_id = tests["id"].as_u64().unwrap();
    let updates = calls_to(&fake, "PATCH", &format!("/check-runs/{tests_id}"));
    assert_eq!(updates.len(), 3);
    assert_eq!(updates[1].body["output"]["title"], "Running: 40%");

    let outputs = parse_outputs(&runner.output_path());
    assert_eq!(outputs["result"], "failure");
    assert_eq!(outputs["message"], "Tests: failure: 3 tests failed");
    let summary = std::fs::read_to_string(runner.summary_path()).unwrap();
    assert!(summary.contains("### ❌ hookgate: `staging` afterDeployment — failure"));
    assert!(
        summary.contains("| Scan | none | 🚫 cancelled | 0ms | not run: `Tests` ended `failure` |")
    );
}

#[tokio::test]
async fn after_deployment_statuses_go_on_the_environments_deployment() {
    let fake = FakeGithub::start(TOKEN).await;
    let deployment = fake.add_deployment(HEAD_SHA, "staging");
    fake.add_deployment(HEAD_SHA, "production");
    let mut runner = Runner::pull_request(&fake);
    runner
        .set("INPUT_DEPLOYMENT-STATUS", "true")
        .set("INPUT_CHECK-RUNS", "false")
        .set("INPUT_JOB-SUMMARY", "false")
        .set("INPUT_ENVIRONMENT-URL", "https://staging.example.com");
    let reporters = runner.actions().reporters();
    let steps = vec![(
        step("Integration tests", 0, "callback"),
        outcome(Conclusion::Success, "42 passed", 9_000),
    )];
    deliver(
        &reporters,
        &run_events("staging", "afterDeployment", &steps),
    )
    .await;

    fake.assert_no_problems();
    assert!(fake.check_runs().is_empty(), "check-runs: false");
    let lookups = calls_to(&fake, "GET", "/deployments");
    assert_eq!(lookups.len(), 1);
    assert!(lookups[0].query.contains(&format!("sha={HEAD_SHA}")));
    assert!(lookups[0].query.contains("environment=staging"));
    let statuses = fake.statuses();
    let states: Vec<(u64, &str)> = statuses
        .iter()
        .map(|(id, s)| (*id, s["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        [(deployment, "in_progress"), (deployment, "success")]
    );
    for (_, status) in &statuses {
        assert_eq!(status["log_url"], RUN_URL);
        assert_eq!(status["environment_url"], "https://staging.example.com");
        assert_eq!(status["environment"], "staging");
    }
    assert_eq!(
        statuses[1].1["description"],
        "hookgate: 1 afterDeployment gate(s) passed"
    );
    // `job-summary: false` leaves the summary alone but still writes the outputs.
    assert_eq!(std::fs::read_to_string(runner.summary_path()).unwrap(), "");
    assert_eq!(parse_outputs(&runner.output_path())["result"], "success");
}

#[tokio::test]
async fn before_deployment_can_create_the_deployment_and_mark_it_failed() {
    let fake = FakeGithub::start(TOKEN).await;
    let mut runner = Runner::pull_request(&fake);
    runner
        .set("GITHUB_EVENT_NAME", "push")
        .set("INPUT_DEPLOYMENT-STATUS", "true")
        .set("INPUT_CREATE-DEPLOYMENT", "true")
        .set("INPUT_CHECK-RUNS", "false");
    let reporters = runner.actions().reporters();
    let why = format!("change ticket CHG-1 was rejected: {}", "reason ".repeat(40));
    let steps = vec![(
        step("Change ticket", 0, "poll"),
        outcome(Conclusion::Failure, &why, 500),
    )];
    deliver(
        &reporters,
        &run_events("production", "beforeDeployment", &steps),
    )
    .await;

    fake.assert_no_problems();
    let deployments = fake.deployments();
    assert_eq!(deployments.len(), 1);
    assert_eq!(
        deployments[0]["sha"], MERGE_SHA,
        "push events gate GITHUB_SHA"
    );
    assert_eq!(deployments[0]["environment"], "production");
    let create = &calls_to(&fake, "POST", "/deployments")[0];
    assert_eq!(create.body["required_contexts"], json!([]));
    let statuses = fake.statuses();
    assert_eq!(statuses.len(), 2);
    assert_eq!(statuses[0].1["state"], "in_progress");
    assert_eq!(statuses[1].1["state"], "failure");
    let description = statuses[1].1["description"].as_str().unwrap();
    assert!(description.starts_with("hookgate: Change ticket failure: change ticket CHG-1"));
    assert_eq!(description.chars().count(), 140);
}

#[tokio::test]
async fn a_given_deployment_id_is_used_without_a_lookup() {
    let fake = FakeGithub::start(TOKEN).await;
    let deployment = fake.add_deployment("other", "staging");
    let mut runner = Runner::pull_request(&fake);
    runner
        .set("INPUT_DEPLOYMENT-STATUS", "true")
        .set("INPUT_DEPLOYMENT-ID", &deployment.to_string())
        .set("INPUT_CHECK-RUNS", "false");
    let reporters = runner.actions().reporters();
    let steps = vec![(
        step("Smoke", 0, "none"),
        outcome(Conclusion::TimedOut, "no answer in 5m", 300_000),
    )];
    deliver(
        &reporters,
        &run_events("staging", "afterDeployment", &steps),
    )
    .await;

    fake.assert_no_problems();
    assert!(calls_to(&fake, "GET", "/deployments").is_empty());
    for call in calls_to(&fake, "POST", "/statuses") {
        assert!(
            call.body.get("environment").is_none(),
            "a given deployment keeps its environment"
        );
    }
    let states: Vec<String> = fake
        .statuses()
        .iter()
        .map(|(id, s)| format!("{id}:{}", s["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        [
            format!("{deployment}:in_progress"),
            format!("{deployment}:error")
        ]
    );
}

#[tokio::test]
async fn a_github_app_authenticates_with_a_jwt_and_one_installation_token() {
    let fake = FakeGithub::start("not-used").await;
    let mut runner = Runner::pull_request(&fake);
    runner
        .unset("INPUT_GITHUB-TOKEN")
        .set("INPUT_APP-ID", &APP_ID.to_string())
        .set("INPUT_APP-PRIVATE-KEY", &app_private_key());
    let actions = runner.actions();
    let reporters = actions.reporters();
    deliver(&reporters, &one_passing_step()).await;

    fake.assert_no_problems();
    let calls = fake.calls();
    assert_eq!(calls[0].method, "GET");
    assert_eq!(calls[0].path, "/repos/octo/app/installation");
    let grants = calls_to(&fake, "POST", "/access_tokens");
    assert_eq!(grants.len(), 1, "the installation token is cached");
    assert_eq!(
        grants[0].path,
        format!(
            "/app/installations/{}/access_tokens",
            crate::fake_github::INSTALLATION_ID
        )
    );
    assert_eq!(grants[0].body["repositories"], json!(["app"]));
    let installation_token = calls
        .iter()
        .find(|c| c.path.contains("check-runs"))
        .map(|c| c.authorization.clone())
        .unwrap();
    assert!(installation_token.starts_with("Bearer ghs_installation"));
    assert!(
        calls
            .iter()
            .filter(|c| c.path.contains("check-runs"))
            .all(|c| c.authorization == installation_token)
    );
    assert_eq!(fake.check_runs()[0]["conclusion"], "success");

    // The engine's dispatches share the same token.
    let port = actions.github_port().unwrap();
    assert_eq!(port.repository(), Some("octo/app"));
    let token = actions.tokens().unwrap().token().await.unwrap();
    assert_eq!(format!("Bearer {token}"), installation_token);
    assert_eq!(calls_to(&fake, "POST", "/access_tokens").len(), 1);
}

#[tokio::test]
async fn an_installation_token_near_its_expiry_is_replaced() {
    let fake = FakeGithub::start("not-used").await;
    // Four minutes left is inside the five-minute margin: every use fetches a new token.
    fake.set_token_lifetime(Duration::from_secs(240));
    let mut runner = Runner::pull_request(&fake);
    runner
        .unset("INPUT_GITHUB-TOKEN")
        .set("INPUT_APP-ID", &APP_ID.to_string())
        .set("INPUT_APP-PRIVATE-KEY", &app_private_key());
    let tokens = runner.actions().tokens().unwrap();
    let first = tokens.token().await.unwrap();
    let second = tokens.token().await.unwrap();
    assert_ne!(first, second);
    fake.assert_no_problems();
    assert_eq!(calls_to(&fake, "POST", "/access_tokens").len(), 2);
    // The installation is looked up once.
    assert_eq!(calls_to(&fake, "GET", "/installation").len(), 1);
}

#[tokio::test]
async fn a_secondary_rate_limit_is_waited_out_as_github_asks() {
    let fake = FakeGithub::start(TOKEN).await;
    fake.script(
        Scripted::new("POST", "/check-runs", 403, json!({"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."})).header("retry-after", "1"),
    );
    fake.script(Scripted::new(
        "PATCH",
        "",
        502,
        json!({"message": "Server Error"}),
    ));
    let runner = Runner::pull_request(&fake);
    let reporters = runner.actions().reporters();
    deliver(&reporters, &one_passing_step()).await;

    fake.assert_no_problems();
    let creates = calls_to(&fake, "POST", "/check-runs");
    assert_eq!(creates.len(), 2, "sent again after the limit");
    assert_eq!(creates[0].status, 403);
    assert_eq!(creates[1].status, 201);
    let waited = creates[1].at.duration_since(creates[0].at);
    assert!(waited >= Duration::from_secs(1), "waited only {waited:?}");
    // The PATCH that met a 502 is idempotent and was sent again.
    let updates = calls_to(&fake, "PATCH", "/check-runs/");
    assert_eq!(updates[0].status, 502);
    assert_eq!(updates[1].status, 200);
    assert_eq!(updates[0].body, updates[1].body);
    let runs = fake.check_runs();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["conclusion"], "success");
}

#[tokio::test]
async fn a_spent_primary_rate_limit_is_waited_out_until_its_reset() {
    let fake = FakeGithub::start(TOKEN).await;
    let reset = unix_seconds() + 1;
    fake.script(
        Scripted::new(
            "GET",
            "/deployments",
            403,
            json!({"message": "API rate limit exceeded for installation."}),
        )
        .header("x-ratelimit-remaining", "0")
        .header("x-ratelimit-reset", &reset.to_string()),
    );
    let deployment = fake.add_deployment(HEAD_SHA, "staging");
    report_one_step_to_deployments(&fake).await;

    fake.assert_no_problems();
    let lookups = calls_to(&fake, "GET", "/deployments");
    assert_eq!(lookups.len(), 2);
    assert_eq!((lookups[0].status, lookups[1].status), (403, 200));
    assert!(
        unix_seconds() >= reset,
        "the second lookup waited for the reset"
    );
    assert!(lookups[1].at.duration_since(lookups[0].at) >= Duration::from_secs(1));
    assert_eq!(fake.statuses().len(), 2);
    assert_eq!(fake.statuses()[0].0, deployment);
}

#[tokio::test]
async fn a_check_run_create_that_may_have_reached_github_is_found_not_sent_twice() {
    // GitHub created the check, then the answer was lost in a 502.
    let (fake, _runner) = one_step_after(
        Scripted::new(
            "POST",
            "/check-runs",
            502,
            json!({"message": "Server Error"}),
        )
        .after_acting(),
    )
    .await;

    fake.assert_no_problems();
    assert_eq!(calls_to(&fake, "POST", "/check-runs").len(), 1);
    let lookup = &calls_to(&fake, "GET", "/check-runs")[0];
    assert_eq!(
        lookup.path,
        format!("/repos/octo/app/commits/{HEAD_SHA}/check-runs")
    );
    assert!(
        lookup
            .query
            .contains("check_name=hookgate%20%2F%20staging%20%2F%20Approve")
    );
    let runs = fake.check_runs();
    assert_eq!(runs.len(), 1, "found by its external_id, not made again");
    assert_eq!(runs[0]["conclusion"], "success");
}

#[tokio::test]
async fn a_check_run_create_that_did_not_reach_github_is_made_on_the_next_event() {
    let (fake, _runner) = one_step_after(Scripted::new(
        "POST",
        "/check-runs",
        502,
        json!({"message": "Server Error"}),
    ))
    .await;

    fake.assert_no_problems();
    let creates = calls_to(&fake, "POST", "/check-runs");
    assert_eq!(creates.len(), 2);
    assert_eq!(creates[1].body["status"], "in_progress");
    assert_eq!(calls_to(&fake, "GET", "/check-runs").len(), 1);
    let runs = fake.check_runs();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["conclusion"], "success");
}

#[tokio::test]
async fn a_missing_permission_stops_check_runs_after_one_try() {
    let (fake, runner) = one_step_after(Scripted::new(
        "POST",
        "/check-runs",
        403,
        json!({"message": "Resource not accessible by integration"}),
    ))
    .await;

    // A plain 403 is a missing permission, not a limit: not sent again, and nothing more is.
    let statuses: Vec<u16> = fake.calls().iter().map(|c| c.status).collect();
    assert_eq!(statuses, [403]);
    assert!(fake.check_runs().is_empty());
    let outputs = parse_outputs(&runner.output_path());
    assert_eq!(outputs["result"], "success");
    fake.assert_no_problems();
}

#[tokio::test]
async fn a_pull_requests_deployment_is_also_looked_for_on_the_merge_commit() {
    let fake = FakeGithub::start(TOKEN).await;
    let deployment = fake.add_deployment(MERGE_SHA, "staging");
    report_one_step_to_deployments(&fake).await;

    fake.assert_no_problems();
    let lookups = calls_to(&fake, "GET", "/deployments");
    assert_eq!(lookups.len(), 2);
    assert!(lookups[0].query.contains(HEAD_SHA));
    assert!(lookups[1].query.contains(MERGE_SHA));
    let states: Vec<(u64, String)> = fake
        .statuses()
        .iter()
        .map(|(id, s)| (*id, s["state"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        states,
        [
            (deployment, "in_progress".to_owned()),
            (deployment, "success".to_owned())
        ]
    );
}

#[tokio::test]
async fn outside_actions_there_are_no_reporters_but_dispatches_still_authenticate() {
    let vars: HashMap<&str, &str> = [
        ("GITHUB_TOKEN", "ghp_local"),
        ("GITHUB_REPOSITORY", "octo/app"),
    ]
    .into_iter()
    .collect();
    let ctx = GithubContext::from_lookup(&|k| vars.get(k).map(|v| (*v).to_owned())).unwrap();
    let actions = Actions::new(ctx, RetryPolicy::default()).unwrap();
    assert!(actions.reporters().is_empty());
    assert_eq!(
        actions.github_port().unwrap().repository(),
        Some("octo/app")
    );
    assert_eq!(
        actions.tokens().unwrap().token().await.unwrap(),
        "ghp_local"
    );
    assert_eq!(actions.context().api_url, "https://api.github.com");
}

// ---------------------------------------------------------------------------------------------
// The real binary in a simulated Actions job.

/// A deployment file whose `staging` target has two before-deployment gates: `Migrate`, a
/// webhook to `service` that the answer decides, and `Start tests`, a `repository_dispatch`.
fn gated_file(dir: &Path, service: &str) -> PathBuf {
    staging_file(
        dir,
        &format!(
            r#"        - runWebhook: {{name: Migrate}}
        - runWebhook: {{name: Start tests}}
webhooks:
  - name: Migrate
    method: POST
    uriTemplate: {service}/migrate
    bodyTemplate:
      inline: '{{"env": "{{{{ armory.environmentName }}}}"}}'
    waitFor: none
    retryCount: 0
  - name: Start tests
    repositoryDispatch:
      repository: octo/tests
      eventType: run-tests
      clientPayload:
        environment: "{{{{ armory.environmentName }}}}"
    waitFor: none
"#
        ),
    )
}

/// Writes `deploy.yml` in `dir`: the `staging` target's before-deployment gates, then `rest`
/// (the gates' `runWebhook` lines and the `webhooks:`).
fn staging_file(dir: &Path, rest: &str) -> PathBuf {
    let path = dir.join("deploy.yml");
    let head = "application: shop\ntargets:\n  staging:\n    account: staging-cluster\n    namespace: shop-staging\n    constraints:\n      beforeDeployment:\n";
    std::fs::write(&path, format!("{head}{rest}")).unwrap();
    path
}

/// Runs `hookgate run --target staging --phase before-deployment` in the runner's environment.
async fn run_binary(runner: &Runner, file: &Path) -> (i32, String) {
    let mut cmd = crate::common::hookgate();
    cmd.arg("run")
        .arg("--file")
        .arg(file)
        .args(["--target", "staging", "--phase", "before-deployment"])
        .envs(&runner.vars)
        .timeout(Duration::from_secs(60));
    let output = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    (output.status.code().unwrap_or(-1), combined(&output))
}

/// What a process wrote, stdout then stderr.
fn combined(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn service(status: u16, body: Value) -> crate::support::TestServer {
    crate::support::TestServer::start(move |_, _| {
        crate::support::Reply::status(status).with_json(body.clone())
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn hookgate_run_reports_a_passing_pull_request_gate_to_github() {
    let fake = FakeGithub::start(TOKEN).await;
    let service = service(200, json!({"migrated": 3}));
    let runner = Runner::pull_request(&fake);
    let file = gated_file(runner.dir.path(), &service.url);
    let (code, out) = run_binary(&runner, &file).await;
    assert_eq!(code, 0, "{out}");

    fake.assert_no_problems();
    let runs = fake.check_runs();
    assert_eq!(runs.len(), 2, "{runs:#?}");
    for name in [
        "hookgate / staging / Migrate",
        "hookgate / staging / Start tests",
    ] {
        let run = check_named(&runs, name);
        assert_eq!(run["head_sha"], HEAD_SHA);
        assert_eq!(run["conclusion"], "success");
        assert_eq!(run["details_url"], RUN_URL);
    }
    let dispatches = fake.dispatches();
    assert_eq!(dispatches.len(), 1);
    assert_eq!(dispatches[0].0, "/repos/octo/tests/dispatches");
    assert_eq!(dispatches[0].1["event_type"], "run-tests");
    assert_eq!(dispatches[0].1["client_payload"]["environment"], "staging");

    let outputs = parse_outputs(&runner.output_path());
    assert_eq!(outputs["result"], "success");
    let results: Value = serde_json::from_str(&outputs["results"]).unwrap();
    assert_eq!(results.as_array().unwrap().len(), 2);
    let summary = std::fs::read_to_string(runner.summary_path()).unwrap();
    assert!(
        summary.contains("| Migrate | none | ✅ success |"),
        "{summary}"
    );
    assert!(
        summary.contains("| Start tests | none | ✅ success |"),
        "{summary}"
    );
    assert!(
        out.contains("::group::hookgate: Migrate (waits by none)"),
        "{out}"
    );
    assert!(out.contains("::endgroup::"), "{out}");
    assert!(
        out.lines()
            .filter(|line| line.contains(TOKEN))
            .all(|line| line.starts_with("::add-mask::")),
        "the token reaches the log only to be masked: {out}"
    );
    eprintln!("job summary:\n{summary}");
}

#[tokio::test(flavor = "multi_thread")]
async fn hookgate_run_fails_the_step_and_the_check_of_a_failing_gate() {
    let fake = FakeGithub::start(TOKEN).await;
    let service = service(422, json!({"error": "schema drift in table orders"}));
    let runner = Runner::pull_request(&fake);
    let file = gated_file(runner.dir.path(), &service.url);
    let (code, out) = run_binary(&runner, &file).await;
    assert_eq!(code, 1, "{out}");

    fake.assert_no_problems();
    let runs = fake.check_runs();
    let migrate = check_named(&runs, "hookgate / staging / Migrate");
    assert_eq!(migrate["conclusion"], "failure");
    assert!(
        migrate["output"]["summary"]
            .as_str()
            .unwrap()
            .contains("422"),
        "{migrate:#?}"
    );
    let tests = check_named(&runs, "hookgate / staging / Start tests");
    assert_eq!(tests["conclusion"], "cancelled", "never started");
    assert!(fake.dispatches().is_empty());
    assert!(
        out.contains("::error title=hookgate / staging / Migrate::"),
        "{out}"
    );
    let outputs = parse_outputs(&runner.output_path());
    assert_eq!(outputs["result"], "failure");
    assert!(
        outputs["message"].starts_with("Migrate: failure"),
        "{outputs:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hookgate_run_never_dispatches_twice_after_a_502() {
    let fake = FakeGithub::start(TOKEN).await;
    // GitHub queued the event, then answered 502.
    fake.script(
        Scripted::new(
            "POST",
            "/dispatches",
            502,
            json!({"message": "Server Error"}),
        )
        .after_acting(),
    );
    let service = service(200, json!({}));
    let runner = Runner::pull_request(&fake);
    let file = gated_file(runner.dir.path(), &service.url);
    let (code, out) = run_binary(&runner, &file).await;
    assert_eq!(code, 1, "{out}");

    fake.assert_no_problems();
    assert_eq!(calls_to(&fake, "POST", "/dispatches").len(), 1, "{out}");
    assert_eq!(fake.dispatches().len(), 1);
    let runs = fake.check_runs();
    let tests = check_named(&runs, "hookgate / staging / Start tests");
    assert_eq!(tests["conclusion"], "failure");
    assert!(tests["output"]["summary"].as_str().unwrap().contains("502"));
}

#[tokio::test(flavor = "multi_thread")]
async fn hookgate_run_keeps_its_verdict_when_github_reporting_fails() {
    let fake = FakeGithub::start(TOKEN).await;
    fake.script(Scripted::new(
        "POST",
        "/check-runs",
        403,
        json!({"message": "Resource not accessible by integration"}),
    ));
    let service = service(200, json!({}));
    let runner = Runner::pull_request(&fake);
    let file = gated_file(runner.dir.path(), &service.url);
    let (code, out) = run_binary(&runner, &file).await;
    assert_eq!(code, 0, "{out}");
    let warnings: Vec<&str> = out
        .lines()
        .filter(|line| line.starts_with("::warning title=hookgate reporting::"))
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "one warning for one missing permission: {out}"
    );
    assert!(warnings[0].contains("Resource not accessible by integration"));
    assert!(warnings[0].contains("checks: write"));
    assert_eq!(calls_to(&fake, "POST", "/check-runs").len(), 1);
    assert_eq!(fake.dispatches().len(), 1, "the gates ran as usual");
    assert_eq!(parse_outputs(&runner.output_path())["result"], "success");
    fake.assert_no_problems();
}

#[tokio::test(flavor = "multi_thread")]
async fn hookgate_run_as_a_github_app_shares_one_installation_token() {
    let fake = FakeGithub::start("not-used").await;
    let service = service(200, json!({}));
    let mut runner = Runner::pull_request(&fake);
    runner
        .unset("INPUT_GITHUB-TOKEN")
        .set("INPUT_APP-ID", &APP_ID.to_string())
        .set("INPUT_APP-PRIVATE-KEY", &app_private_key());
    let file = gated_file(runner.dir.path(), &service.url);
    let (code, out) = run_binary(&runner, &file).await;
    assert_eq!(code, 0, "{out}");

    fake.assert_no_problems();
    assert_eq!(calls_to(&fake, "POST", "/access_tokens").len(), 1, "{out}");
    let dispatch = &calls_to(&fake, "POST", "/dispatches")[0];
    assert!(
        dispatch
            .authorization
            .starts_with("Bearer ghs_installation")
    );
    assert!(
        calls_to(&fake, "PATCH", "/check-runs/")
            .iter()
            .all(|c| c.authorization == dispatch.authorization)
    );
    let token = dispatch.authorization.trim_start_matches("Bearer ");
    assert!(out.contains(&format!("::add-mask::{token}")), "{out}");
    assert!(
        out.lines()
            .filter(|line| line.contains(token))
            .all(|line| line.starts_with("::add-mask::")),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_job_marks_its_checks_cancelled() {
    let fake = FakeGithub::start(TOKEN).await;
    let service = service(200, json!({"state": "RUNNING"}));
    let runner = Runner::pull_request(&fake);
    let file = staging_file(
        runner.dir.path(),
        &format!(
            r#"        - runWebhook: {{name: Soak}}
        - runWebhook: {{name: Later}}
webhooks:
  - name: Soak
    uriTemplate: {url}/soak
    waitFor: poll
    poll: {{statusJsonPath: $.state, interval: 50ms}}
  - name: Later
    uriTemplate: {url}/later
    waitFor: none
"#,
            url = service.url
        ),
    );
    let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin!("hookgate"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(&runner.vars)
        .arg("run")
        .arg("--file")
        .arg(&file)
        .args(["--target", "staging", "--phase", "before-deployment"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = command.spawn().unwrap();
    // Wait until the Soak check is in progress and its webhook is being polled.
    let mut started = false;
    for _ in 0..400 {
        let in_progress = fake
            .check_runs()
            .iter()
            .any(|r| r["name"] == "hookgate / staging / Soak" && r["status"] == "in_progress");
        if in_progress && service.requests().len() >= 2 {
            started = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        started,
        "the run never started polling: {:#?}",
        fake.calls()
    );
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let out = combined(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");

    fake.assert_no_problems();
    let runs = fake.check_runs();
    for name in ["hookgate / staging / Soak", "hookgate / staging / Later"] {
        let run = check_named(&runs, name);
        assert_eq!(run["status"], "completed", "{run:#?}");
        assert_eq!(run["conclusion"], "cancelled", "{run:#?}");
    }
    assert_eq!(parse_outputs(&runner.output_path())["result"], "cancelled");
}

#[tokio::test(flavor = "multi_thread")]
async fn hookgate_run_dispatches_a_workflow_and_waits_for_its_run() {
    let fake = FakeGithub::start(TOKEN).await;
    let runner = Runner::pull_request(&fake);
    let file = staging_file(
        runner.dir.path(),
        r#"        - runWebhook: {name: Load test}
webhooks:
  - name: Load test
    workflowDispatch:
      workflow: load.yml
      ref: main
      inputs:
        target: "{{ armory.environmentName }}"
    waitFor: workflowRun
    poll: {interval: 50ms}
"#,
    );
    let (code, out) = run_binary(&runner, &file).await;
    assert_eq!(code, 0, "{out}");

    // The engine's dispatch body passed GitHub's schema for the operation.
    fake.assert_no_problems();
    let dispatches = fake.dispatches();
    assert_eq!(dispatches.len(), 1);
    assert_eq!(
        dispatches[0].0,
        "/repos/octo/app/actions/workflows/load.yml/dispatches"
    );
    assert_eq!(dispatches[0].1["return_run_details"], true);
    let runs = fake.check_runs();
    let check = check_named(&runs, "hookgate / staging / Load test");
    assert_eq!(check["conclusion"], "success");
    assert!(
        check["output"]["text"]
            .as_str()
            .unwrap()
            .contains("waits by `workflowRun`")
    );
}

/// A dispatched run that fails: the check run names its failed job and step, with a link; a
/// dispatched run still going when the gate times out is cancelled through the Actions API. The
/// fake checks the jobs and cancel calls against GitHub's schemas.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_run_is_explained_and_a_run_outlasting_its_gate_is_cancelled() {
    let fake = FakeGithub::start(TOKEN).await;
    fake.set_run_conclusion(Some("failure"));
    let runner = Runner::pull_request(&fake);
    let webhook = |timeout: &str| {
        format!(
            r#"        - runWebhook: {{name: Load test}}
webhooks:
  - name: Load test
    workflowDispatch: {{workflow: load.yml, ref: main}}
    waitFor: workflowRun
    poll: {{interval: 50ms}}
    timeout: {timeout}
"#
        )
    };
    let file = staging_file(runner.dir.path(), &webhook("1h"));
    let (code, out) = run_binary(&runner, &file).await;
    assert_eq!(code, 1, "{out}");
    fake.assert_no_problems();
    let runs = fake.check_runs();
    let check = check_named(&runs, "hookgate / staging / Load test");
    assert_eq!(check["conclusion"], "failure");
    let summary = check["output"]["summary"].as_str().unwrap();
    assert!(
        summary.contains("concluded `failure`; not passed: job `e2e` `failure` (https://github.com/octo/app/actions/runs/")
            && summary.contains("/job/502): step 4 `Run suites`"),
        "{summary}"
    );
    assert!(fake.cancelled_runs().is_empty());

    fake.set_run_conclusion(None);
    let file = staging_file(runner.dir.path(), &webhook("500ms"));
    let (code, out) = run_binary(&runner, &file).await;
    assert_eq!(code, 1, "{out}");
    fake.assert_no_problems();
    assert_eq!(fake.cancelled_runs().len(), 1, "{out}");
    assert!(out.contains("cancelled"), "{out}");
}

/// The job summary of a run whose first gate returns outputs (read from its status answer) and
/// whose second, a dispatched workflow run, outlasts its timeout and is cancelled: the summary
/// names the cancelled run and lists the outputs, and `$GITHUB_OUTPUT` has them.
#[tokio::test(flavor = "multi_thread")]
async fn the_summary_lists_outputs_and_names_a_cancelled_dispatch() {
    let fake = FakeGithub::start(TOKEN).await;
    fake.set_run_conclusion(None);
    let service = crate::support::TestServer::start(|seen, _| {
        if seen.method == "POST" {
            crate::support::Reply::status(202)
        } else {
            crate::support::Reply::json(
                json!({"state": "SUCCEEDED", "report": "https://ci.example/runs/7"}),
            )
        }
    });
    let runner = Runner::pull_request(&fake);
    let file = staging_file(
        runner.dir.path(),
        &format!(
            r#"        - runWebhook: {{name: Smoke tests}}
        - runWebhook: {{name: Load test}}
webhooks:
  - name: Smoke tests
    uriTemplate: {url}/smoke
    waitFor: poll
    poll:
      interval: 50ms
      statusJsonPath: $.state
      successStatuses: SUCCEEDED
      outputs: {{report_url: $.report}}
  - name: Load test
    workflowDispatch: {{workflow: load.yml, ref: main}}
    waitFor: workflowRun
    poll: {{interval: 50ms}}
    timeout: 500ms
"#,
            url = service.url
        ),
    );
    let (code, out) = run_binary(&runner, &file).await;
    assert_eq!(code, 1, "{out}");
    fake.assert_no_problems();
    assert_eq!(fake.cancelled_runs().len(), 1, "{out}");
    let summary = std::fs::read_to_string(runner.summary_path()).unwrap();
    assert!(
        summary.contains("| Smoke tests | `report_url` | https://ci.example/runs/7 |"),
        "{summary}"
    );
    let load = summary
        .lines()
        .find(|line| line.starts_with("| Load test |"))
        .unwrap_or_else(|| panic!("{summary}"));
    assert!(load.contains("timed_out"), "{load}");
    assert!(load.contains("of octo/app cancelled"), "{load}");
    assert_eq!(
        parse_outputs(&runner.output_path())["report_url"],
        "https://ci.example/runs/7"
    );
}

/// Progress lines that come sooner than the update interval are not lost: the check is updated
/// when the interval is over, with the newest lines, without waiting for another event.
#[tokio::test]
async fn the_check_run_shows_the_latest_progress_after_the_update_interval() {
    let fake = FakeGithub::start(TOKEN).await;
    let runner = Runner::pull_request(&fake);
    let reporters = runner
        .actions()
        .with_progress_interval(Duration::from_millis(400))
        .reporters();
    let tests = step("Tests", 0, "callback");
    let progress = |message: &str| Event::StepProgress {
        step: tests.clone(),
        message: message.to_owned(),
        percent: None,
    };
    deliver(
        &reporters,
        &[
            Event::RunStarted {
                target: "staging".to_owned(),
                phase: "beforeDeployment".to_owned(),
                steps: vec![tests.clone()],
            },
            Event::StepStarted {
                step: tests.clone(),
            },
            progress("1 of 3 suites"),
            progress("2 of 3 suites"),
            progress("3 of 3 suites"),
        ],
    )
    .await;
    // The reporters run detached: the check appears, then its updates.
    let summary_now = |fake: &FakeGithub| {
        fake.check_runs()
            .iter()
            .find(|run| run["name"] == "hookgate / staging / Tests")
            .and_then(|run| run["output"]["summary"].as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    let mut latest = String::new();
    for _ in 0..40 {
        latest = summary_now(&fake);
        if latest.contains("3 of 3 suites") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        latest.contains("- 2 of 3 suites\n- 3 of 3 suites"),
        "{latest}"
    );
    fake.assert_no_problems();
}
