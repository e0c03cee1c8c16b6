//! The engine's rules, in process against its API, with a scripted HTTP service on 127.0.0.1
//! standing in for what a deployment file calls: retries, their backoff and idempotency key,
//! `retryStatusCodes`, `Retry-After`, `failFastStatusCodes`, `if:` conditions reading
//! `steps['NAME']`, masking, step and run timeouts, and cancellation (a failing sibling in a
//! parallel group, or the run's own token) reaching each `cancel` endpoint.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Reply, Service, gaps, one_step, run, run_until};
use hookgate_config::Phase;
use hookgate_engine::backoff::Backoff;
use hookgate_engine::{Conclusion, Event, RunSettings};
use indexmap::IndexMap;
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// Settings whose retries wait `base` (doubling, with jitter).
fn retrying_after(base: Duration) -> RunSettings {
    RunSettings {
        retry_backoff: Backoff {
            base,
            max: Duration::from_secs(60),
        },
        ..RunSettings::default()
    }
}

/// Runs a one-step file whose webhook `name` calls `{service}/{name}`, with the YAML `fields`.
async fn run_one(
    service: &Service,
    name: &str,
    fields: &str,
    settings: RunSettings,
) -> (hookgate_engine::RunReport, common::Recorder) {
    let yaml = one_step(
        name,
        &format!("    uriTemplate: {}/{name}\n{fields}", service.url),
    );
    run(&yaml, Phase::BeforeDeployment, settings).await
}

#[tokio::test]
async fn a_4xx_fails_without_retry() {
    let service = Service::start(|_, _| Reply::status(404).with_body("no such hook")).await;
    let (report, _) = run_one(
        &service,
        "hook",
        "    waitFor: none\n    retryCount: 3\n",
        retrying_after(Duration::from_millis(10)),
    )
    .await;
    assert_eq!(report.conclusion, Conclusion::Failure);
    assert_eq!(service.requests().len(), 1);
    let message = &report.outcomes[0].1.message;
    assert!(message.contains("HTTP 404"), "{message}");
    assert!(message.contains("no such hook"), "{message}");
}

#[tokio::test]
async fn retries_back_off_exponentially_with_one_idempotency_key() {
    let service = Service::start(|_, earlier| {
        if earlier.len() < 3 {
            Reply::status(503)
        } else {
            Reply::status(200)
        }
    })
    .await;
    let (report, recorder) = run_one(
        &service,
        "flaky",
        "    waitFor: none\n    retryCount: 3\n",
        retrying_after(Duration::from_millis(100)),
    )
    .await;
    assert_eq!(report.conclusion, Conclusion::Success);
    let requests = service.requests();
    assert_eq!(requests.len(), 4);
    // Equal jitter: retry n waits between half and all of 100 ms * 2^n.
    for (n, gap) in gaps(&requests).iter().enumerate() {
        let floor = Duration::from_millis(50 << n);
        assert!(
            *gap >= floor,
            "retry {n} came after {gap:?}, before {floor:?}"
        );
    }
    let keys: Vec<_> = requests
        .iter()
        .map(|r| r.header("idempotency-key"))
        .collect();
    assert!(keys[0].is_some_and(|key| !key.is_empty()));
    assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
    let progress = recorder.progress();
    assert!(
        progress
            .iter()
            .any(|m| m.starts_with("attempt 1 of 4 failed (HTTP 503)")),
        "{progress:?}"
    );
}

#[tokio::test]
async fn retries_run_out() {
    let service = Service::start(|_, _| Reply::status(500)).await;
    let (report, _) = run_one(
        &service,
        "down",
        "    waitFor: none\n    retryCount: 2\n",
        retrying_after(Duration::from_millis(10)),
    )
    .await;
    assert_eq!(report.conclusion, Conclusion::Failure);
    assert_eq!(service.requests().len(), 3);
    let message = &report.outcomes[0].1.message;
    assert!(message.contains("after 3 attempts"), "{message}");
}

#[tokio::test]
async fn retry_status_codes_are_retried_and_retry_after_is_honoured() {
    let service = Service::start(|_, earlier| match earlier.len() {
        0 => Reply::status(409),
        1 => Reply::status(429).with_header("retry-after", "1"),
        _ => Reply::status(200),
    })
    .await;
    let (report, _) = run_one(
        &service,
        "busy",
        "    waitFor: none\n    retryCount: 2\n    retryStatusCodes: [409]\n",
        retrying_after(Duration::from_millis(10)),
    )
    .await;
    assert_eq!(report.conclusion, Conclusion::Success);
    let gaps = gaps(&service.requests());
    assert_eq!(gaps.len(), 2);
    assert!(
        gaps[0] < Duration::from_millis(500),
        "backoff of 10 ms took {:?}",
        gaps[0]
    );
    assert!(
        gaps[1] >= Duration::from_millis(950),
        "Retry-After: 1 gave {:?}",
        gaps[1]
    );
}

#[tokio::test]
async fn fail_fast_status_codes_end_at_once() {
    let service = Service::start(|_, _| Reply::status(503)).await;
    let (report, _) = run_one(
        &service,
        "gate",
        "    waitFor: none\n    retryCount: 5\n    failFastStatusCodes: [503]\n",
        retrying_after(Duration::from_millis(10)),
    )
    .await;
    assert_eq!(report.conclusion, Conclusion::Failure);
    assert_eq!(service.requests().len(), 1);
    let message = &report.outcomes[0].1.message;
    assert!(message.contains("failFastStatusCodes"), "{message}");
}

/// Two steps: `second` runs if `condition` holds and sends an id read from `first`'s answer.
fn two_steps(first: &str, second: &str, condition: &str, url: &str) -> String {
    format!(
        r#"targets:
  staging:
    constraints:
      beforeDeployment:
        - runWebhook:
            name: {first}
        - runWebhook:
            name: {second}
            if: "{condition}"
webhooks:
  - name: {first}
    uriTemplate: {url}/{first}
    waitFor: none
  - name: {second}
    uriTemplate: "{url}/{second}?id={{{{ steps['{first}'].body.deployment.id }}}}"
    waitFor: none
"#
    )
}

#[tokio::test]
async fn if_conditions_see_earlier_results() {
    let service =
        Service::start(|_, _| Reply::json(json!({"deployment": {"success": true, "id": 7}}))).await;
    let yaml = two_steps(
        "Call Endpoint",
        "On-True",
        "{{ steps['Call Endpoint'].body.deployment.success == true }}",
        &service.url,
    );
    let (report, _) = run(&yaml, Phase::BeforeDeployment, RunSettings::default()).await;
    assert_eq!(report.conclusion, Conclusion::Success);
    assert_eq!(
        service.requests_to("/On-True?id=7").len(),
        1,
        "{:?}",
        service.requests()
    );

    let yaml = two_steps(
        "Call Endpoint",
        "On-False",
        "{{ steps['Call Endpoint'].body.deployment.success == false }}",
        &service.url,
    );
    let (report, _) = run(&yaml, Phase::BeforeDeployment, RunSettings::default()).await;
    assert_eq!(
        report.conclusion,
        Conclusion::Success,
        "a skipped step passes"
    );
    assert!(service.requests_to("/On-False").is_empty());
    let (step, outcome) = &report.outcomes[1];
    assert_eq!(step.name, "On-False");
    assert_eq!(outcome.conclusion, Conclusion::Skipped);
    assert!(
        outcome.message.starts_with("skipped: the condition"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn a_secret_a_service_echoes_is_masked_in_every_event() {
    const SECRET: &str = "s3cr3t-Value-93";
    // The service echoes what it got in an error, as many do.
    let service = Service::start(|seen, _| {
        Reply::status(400).with_body(&format!(
            "bad token {} at {}",
            seen.header("authorization").unwrap_or(""),
            seen.path
        ))
    })
    .await;
    let yaml = one_step(
        "leaky",
        &format!(
            "    uriTemplate: \"{}/leak?key={{{{ secrets.api }}}}\"\n    waitFor: none\n    headers:\n      - key: Authorization\n        value: \"Bearer {{{{ secrets.api }}}}\"\n",
            service.url
        ),
    );
    let settings = RunSettings {
        secrets: IndexMap::from([("api".to_owned(), SECRET.to_owned())]),
        ..RunSettings::default()
    };
    let (report, recorder) = run(&yaml, Phase::BeforeDeployment, settings).await;
    assert_eq!(report.conclusion, Conclusion::Failure);
    assert!(
        service.requests()[0].path.contains(SECRET),
        "the secret was sent"
    );
    let message = &report.outcomes[0].1.message;
    assert!(
        message.contains("bad token Bearer *** at /leak?key=***"),
        "{message}"
    );
    let events = serde_json::to_string(&*recorder.0.lock().unwrap()).unwrap();
    assert!(!events.contains(SECRET), "the secret leaked: {events}");
    assert!(events.contains("bad token Bearer ***"), "{events}");
}

/// A webhook `job` at `{url}/job` polled every 50 ms, with `extra` YAML lines.
fn polled_job(url: &str, extra: &str) -> String {
    one_step(
        "job",
        &format!(
            "    uriTemplate: {url}/job\n    waitFor: poll\n    poll:\n      interval: 50ms\n      statusJsonPath: $.state\n{extra}"
        ),
    )
}

/// A job service: starting answers `{"id": "job-9"}`, every status read `RUNNING`.
async fn running_job() -> Service {
    Service::start(|seen, _| {
        if seen.method == "GET" {
            Reply::json(json!({"state": "RUNNING"}))
        } else {
            Reply::json(json!({"id": "job-9"}))
        }
    })
    .await
}

#[tokio::test]
async fn a_step_past_its_timeout_is_timed_out_and_cancelled_remotely() {
    let service = running_job().await;
    let yaml = polled_job(
        &service.url,
        &format!(
            "    timeout: 400ms\n    cancel:\n      method: DELETE\n      uriTemplate: \"{}/jobs/{{{{ steps['job'].body.id }}}}\"\n",
            service.url
        ),
    );
    let started = Instant::now();
    let (report, _) = run(&yaml, Phase::BeforeDeployment, RunSettings::default()).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(report.conclusion, Conclusion::TimedOut);
    let message = &report.outcomes[0].1.message;
    assert!(
        message.contains("no result within the webhook's timeout of 400ms"),
        "{message}"
    );
    let cancels = service.requests_to("/jobs/job-9");
    assert_eq!(cancels.len(), 1, "{:?}", service.requests());
    assert_eq!(cancels[0].method, "DELETE");
}

#[tokio::test]
async fn the_run_timeout_ends_the_step_and_the_rest_do_not_run() {
    let service = running_job().await;
    let yaml = format!(
        r#"targets:
  staging:
    constraints:
      beforeDeployment:
        - runWebhook: {{name: slow}}
        - runWebhook: {{name: after}}
webhooks:
  - name: slow
    uriTemplate: {url}/job
    waitFor: poll
    poll: {{statusJsonPath: $.state, interval: 50ms}}
  - name: after
    uriTemplate: {url}/after
    waitFor: none
"#,
        url = service.url
    );
    let settings = RunSettings {
        run_timeout: Some(Duration::from_millis(500)),
        ..RunSettings::default()
    };
    let (report, _) = run(&yaml, Phase::BeforeDeployment, settings).await;
    assert_eq!(report.conclusion, Conclusion::TimedOut);
    let (slow, after) = (&report.outcomes[0].1, &report.outcomes[1].1);
    assert!(
        slow.message
            .contains("no result within the run's --timeout"),
        "{}",
        slow.message
    );
    assert!(
        after.message.contains("not run: `slow` ended `timed_out`"),
        "{}",
        after.message
    );
    assert!(service.requests_to("/after").is_empty());
}

/// A blue/green strategy whose three webhooks run in parallel: `scan` fails after 300 ms, `soak`
/// and `e2e` keep running and have cancel endpoints.
fn parallel_group(url: &str) -> String {
    format!(
        r#"targets:
  staging:
    strategy: bg
strategies:
  bg:
    blueGreen:
      activeService: a
      previewService: b
      redirectTrafficAfter:
        - runWebhook: {{name: scan}}
        - runWebhook: {{name: soak}}
        - runWebhook: {{name: e2e}}
        - analysis: {{queries: [cpu]}}
webhooks:
  - name: scan
    uriTemplate: {url}/scan
    waitFor: poll
    poll: {{statusJsonPath: $.verdict, successStatuses: clean, terminalStatuses: vulnerable, interval: 50ms}}
  - name: soak
    uriTemplate: {url}/soak
    waitFor: poll
    poll: {{statusJsonPath: $.state, interval: 50ms}}
    cancel: {{uriTemplate: "{url}/cancel/soak"}}
  - name: e2e
    uriTemplate: {url}/e2e
    waitFor: poll
    poll: {{statusJsonPath: $.state, interval: 50ms}}
    cancel:
      method: DELETE
      uriTemplate: "{url}/cancel/e2e"
      headers: [{{key: X-Reason, value: "sibling failed"}}]
"#
    )
}

/// The service behind [`parallel_group`]: `scan`'s status is `vulnerable` (after `scan_delay`
/// for the call), the others keep running.
async fn parallel_service(scan_delay: Duration) -> Service {
    Service::start(
        move |seen, _| match (seen.method.as_str(), seen.path.as_str()) {
            ("POST", "/scan") => Reply::status(200).with_body("ok").after(scan_delay),
            ("GET", "/scan") => Reply::json(json!({"verdict": "vulnerable"})),
            ("GET", _) => Reply::json(json!({"state": "RUNNING"})),
            _ => Reply::status(202),
        },
    )
    .await
}

#[tokio::test]
async fn a_failure_in_a_parallel_group_cancels_the_others() {
    let service = parallel_service(Duration::from_millis(300)).await;
    let (report, _) = run(
        &parallel_group(&service.url),
        Phase::Strategy,
        RunSettings::default(),
    )
    .await;
    assert_eq!(report.conclusion, Conclusion::Failure);
    let by_name = |name: &str| {
        &report
            .outcomes
            .iter()
            .find(|(step, _)| step.name == name)
            .unwrap()
            .1
    };
    assert_eq!(by_name("scan").conclusion, Conclusion::Failure);
    for name in ["soak", "e2e"] {
        let outcome = by_name(name);
        assert_eq!(outcome.conclusion, Conclusion::Cancelled, "{name}");
        assert!(
            outcome
                .message
                .contains("cancelled: `scan` ended `failure`"),
            "{}",
            outcome.message
        );
    }
    assert_eq!(by_name("analysis").conclusion, Conclusion::Skipped);
    let soak = service.requests_to("/cancel/soak");
    let e2e = service.requests_to("/cancel/e2e");
    assert_eq!((soak.len(), e2e.len()), (1, 1), "{:?}", service.requests());
    assert_eq!(soak[0].method, "POST");
    assert_eq!(e2e[0].method, "DELETE");
    assert_eq!(e2e[0].header("x-reason"), Some("sibling failed"));
}

#[tokio::test]
async fn cancelling_the_run_cancels_every_running_step_and_tells_each_service() {
    // `scan` stays in its call until the run is cancelled.
    let service = parallel_service(Duration::from_secs(30)).await;
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        trigger.cancel();
    });
    let started = Instant::now();
    let (report, recorder) = run_until(
        &parallel_group(&service.url),
        Phase::Strategy,
        RunSettings::default(),
        cancel,
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(report.conclusion, Conclusion::Cancelled);
    for (step, outcome) in &report.outcomes[..3] {
        assert_eq!(outcome.conclusion, Conclusion::Cancelled, "{}", step.name);
        assert!(
            outcome.message.contains("the run was cancelled"),
            "{}",
            outcome.message
        );
    }
    assert_eq!(
        service.requests_to("/cancel/soak").len(),
        1,
        "{:?}",
        service.requests()
    );
    assert_eq!(
        service.requests_to("/cancel/e2e").len(),
        1,
        "{:?}",
        service.requests()
    );
    // Reporters still hear the end.
    let events = recorder.0.lock().unwrap();
    assert!(matches!(
        events.last(),
        Some(Event::RunFinished {
            conclusion: Conclusion::Cancelled,
            ..
        })
    ));
}

/// Settings whose requests give up reading after 300 ms, and retry after 10 ms.
fn impatient() -> RunSettings {
    RunSettings {
        request_timeouts: hookgate_engine::request::Timeouts {
            connect: Duration::from_secs(2),
            read: Duration::from_millis(300),
        },
        ..retrying_after(Duration::from_millis(10))
    }
}

#[tokio::test]
async fn a_request_that_may_have_arrived_is_sent_again_only_when_repeating_is_safe() {
    // The service takes longer than the read timeout: each request may have arrived.
    let slow =
        || async { Service::start(|_, _| Reply::status(200).after(Duration::from_secs(2))).await };

    let service = slow().await;
    let (report, _) = run_one(
        &service,
        "post",
        "    waitFor: none\n    retryCount: 3\n",
        impatient(),
    )
    .await;
    assert_eq!(report.conclusion, Conclusion::Failure);
    assert_eq!(service.requests().len(), 1, "a POST is not sent again");
    let message = &report.outcomes[0].1.message;
    assert!(
        message.contains("not sent again: it may have reached the service"),
        "{message}"
    );
    assert!(message.contains("`idempotent: true`"), "{message}");

    let service = slow().await;
    let (report, _) = run_one(
        &service,
        "post",
        "    waitFor: none\n    retryCount: 2\n    idempotent: true\n",
        impatient(),
    )
    .await;
    assert_eq!(report.conclusion, Conclusion::Failure);
    assert_eq!(
        service.requests().len(),
        3,
        "`idempotent: true` sends it again"
    );

    let service = slow().await;
    let (_, _) = run_one(
        &service,
        "get",
        "    method: GET\n    waitFor: none\n    retryCount: 1\n",
        impatient(),
    )
    .await;
    assert_eq!(service.requests().len(), 2, "a GET is sent again");
}

#[tokio::test]
async fn status_polls_give_up_after_too_many_failures_in_a_row() {
    let service = Service::start(|seen, earlier| {
        if seen.method == "POST" {
            return Reply::json(json!({"id": 1}));
        }
        // One good answer between failures starts the count again.
        let polls = earlier.iter().filter(|r| r.method == "GET").count();
        if polls == 2 {
            Reply::json(json!({"state": "RUNNING"}))
        } else {
            Reply::status(503)
        }
    })
    .await;
    let yaml = polled_job(&service.url, "      maxTransientErrors: 2\n");
    let (report, recorder) = run(&yaml, Phase::BeforeDeployment, RunSettings::default()).await;
    assert_eq!(report.conclusion, Conclusion::Failure);
    let message = &report.outcomes[0].1.message;
    assert!(
        message.contains("3 status checks in a row failed (`poll.maxTransientErrors` is 2)"),
        "{message}"
    );
    // 2 failures, a good answer, then 3 failures.
    assert_eq!(service.requests_to("/job").len(), 1 + 6);
    let progress = recorder.progress();
    assert!(
        progress
            .iter()
            .any(|m| m.contains("(1 of 2 failures in a row allowed)")),
        "{progress:?}"
    );
}

#[tokio::test]
async fn a_gateway_timeout_ends_the_call_unless_the_webhook_lists_it_otherwise() {
    // Spinnaker's default `failFastStatusCodes` is [504].
    let service = Service::start(|_, _| Reply::status(504)).await;
    let (report, _) = run_one(
        &service,
        "gate",
        "    waitFor: none\n    retryCount: 3\n",
        retrying_after(Duration::from_millis(10)),
    )
    .await;
    assert_eq!(report.conclusion, Conclusion::Failure);
    assert_eq!(service.requests().len(), 1);
    assert!(report.outcomes[0].1.message.contains("failFastStatusCodes"));

    for fields in [
        "    waitFor: none\n    retryCount: 2\n    retryStatusCodes: [504]\n",
        "    waitFor: none\n    retryCount: 2\n    failFastStatusCodes: []\n",
    ] {
        let service = Service::start(|_, _| Reply::status(504)).await;
        run_one(
            &service,
            "gate",
            fields,
            retrying_after(Duration::from_millis(10)),
        )
        .await;
        assert_eq!(service.requests().len(), 3, "{fields}");
    }
}

#[tokio::test]
async fn fail_fast_statuses_are_the_calls_and_a_status_check_retries_them() {
    let service = Service::start(|seen, earlier| {
        if seen.method == "POST" {
            return Reply::json(json!({"id": 1}));
        }
        if earlier.iter().filter(|r| r.method == "GET").count() == 0 {
            Reply::status(503)
        } else {
            Reply::json(json!({"state": "SUCCEEDED"}))
        }
    })
    .await;
    let yaml = polled_job(
        &service.url,
        "      successStatuses: SUCCEEDED\n    failFastStatusCodes: [503]\n",
    );
    let (report, _) = run(&yaml, Phase::BeforeDeployment, RunSettings::default()).await;
    assert_eq!(
        report.conclusion,
        Conclusion::Success,
        "{:?}",
        report.outcomes
    );
    assert_eq!(service.requests_to("/job").len(), 3);
}

#[tokio::test]
async fn a_polled_status_answer_gives_outputs_to_later_steps() {
    let service = Service::start(|seen, _| match seen.method.as_str() {
        "POST" => Reply::json(json!({"id": 1})),
        _ if seen.path.starts_with("/job") => Reply::json(
            json!({"state": "SUCCEEDED", "report": {"url": "https://ci.example/7", "failed": 0}}),
        ),
        _ => Reply::status(204),
    })
    .await;
    let yaml = format!(
        r#"targets:
  staging:
    constraints:
      beforeDeployment:
        - runWebhook: {{name: job}}
        - runWebhook: {{name: next}}
webhooks:
  - name: job
    uriTemplate: {url}/job
    waitFor: poll
    poll:
      interval: 50ms
      statusJsonPath: $.state
      successStatuses: SUCCEEDED
      outputs:
        report_url: $.report.url
        failed: $.report.failed
        missing: $.nothing
  - name: next
    uriTemplate: "{url}/next?failed={{{{ steps['job'].outputs.failed }}}}"
    waitFor: none
"#,
        url = service.url
    );
    let (report, recorder) = run(&yaml, Phase::BeforeDeployment, RunSettings::default()).await;
    assert_eq!(
        report.conclusion,
        Conclusion::Success,
        "{:?}",
        report.outcomes
    );
    let outputs = &report.outcomes[0].1.outputs;
    assert_eq!(
        outputs.get("report_url").map(String::as_str),
        Some("https://ci.example/7")
    );
    assert_eq!(outputs.get("failed").map(String::as_str), Some("0"));
    assert!(!outputs.contains_key("missing"));
    assert_eq!(
        service.requests_to("/next?failed=0").len(),
        1,
        "{:?}",
        service.requests()
    );
    let progress = recorder.progress();
    assert!(
        progress
            .iter()
            .any(|m| m.starts_with("output `missing` left out: `$.nothing` found nothing")),
        "{progress:?}"
    );
}

#[tokio::test]
async fn with_webhook_retry_status_codes_the_call_and_the_polls_have_their_own_lists() {
    // As in Spinnaker: `webhookRetryStatusCodes` is the call's, `retryStatusCodes` the polls'.
    let conflict = || async { Service::start(|_, _| Reply::status(409)).await };
    let service = conflict().await;
    run_one(
        &service,
        "gate",
        "    waitFor: none\n    retryCount: 2\n    webhookRetryStatusCodes: []\n    retryStatusCodes: [409]\n",
        retrying_after(Duration::from_millis(10)),
    )
    .await;
    assert_eq!(
        service.requests().len(),
        1,
        "the polls' list does not retry the call"
    );

    let service = conflict().await;
    run_one(
        &service,
        "gate",
        "    waitFor: none\n    retryCount: 2\n    webhookRetryStatusCodes: [409]\n",
        retrying_after(Duration::from_millis(10)),
    )
    .await;
    assert_eq!(service.requests().len(), 3, "the call's list retries it");
}

#[tokio::test]
async fn a_job_the_service_reports_cancelled_is_not_cancelled_again() {
    let service = Service::start(|seen, _| {
        if seen.method == "GET" {
            Reply::json(json!({"state": "CANCELED"}))
        } else {
            Reply::json(json!({"id": "job-9"}))
        }
    })
    .await;
    let yaml = polled_job(
        &service.url,
        &format!(
            "      canceledStatuses: CANCELED\n    cancel:\n      uriTemplate: \"{}/jobs/cancel\"\n",
            service.url
        ),
    );
    let (report, _) = run(&yaml, Phase::BeforeDeployment, RunSettings::default()).await;
    assert_eq!(report.conclusion, Conclusion::Cancelled);
    assert!(
        service.requests_to("/jobs/cancel").is_empty(),
        "{:?}",
        service.requests()
    );
}
