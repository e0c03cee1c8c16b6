//! The runner with an in-memory mailbox standing in for the relay: relay outages are retried,
//! deliveries that fail verification are reported and ignored, the verdict is the first verified
//! one, and reporters hear every event in order with secrets masked.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::{Recorder, Reply, Service};
use futures::future::BoxFuture;
use hookgate_config::Phase;
use hookgate_engine::backoff::Backoff;
use hookgate_engine::{Conclusion, Event, Mailbox, MailboxError, RunReport, RunSettings, Runner};
use hookgate_protocol::{CallbackAuth, CreateSlot, Deadline, Delivery, SlotCreated, SlotId};

const SLOT_TOKEN: &str = "slot-token-7f3a9c";

/// A mailbox whose `wait` answers from a script, one entry per call.
struct ScriptedMailbox {
    script: Mutex<Vec<Result<Vec<Delivery>, MailboxError>>>,
    opened: Mutex<Vec<CreateSlot>>,
    waited_after: Mutex<Vec<u64>>,
}

impl Mailbox for ScriptedMailbox {
    fn open(&self, request: CreateSlot) -> BoxFuture<'_, Result<SlotCreated, MailboxError>> {
        self.opened.lock().unwrap().push(request.clone());
        Box::pin(async move {
            let deadline = match request.deadline {
                Deadline::At(instant) => instant,
                Deadline::In(seconds) => SystemTime::now() + Duration::from_secs(seconds),
            };
            Ok(SlotCreated {
                id: SlotId::random(),
                callback_url: "https://relay.example/v1/callbacks/slot-1".into(),
                deadline,
                auth: request.auth,
                token: Some(SLOT_TOKEN.into()),
                read_token: "read-token".into(),
            })
        })
    }

    fn wait<'a>(
        &'a self,
        _slot: &'a SlotCreated,
        after: u64,
        _wait: Duration,
    ) -> BoxFuture<'a, Result<Vec<Delivery>, MailboxError>> {
        self.waited_after.lock().unwrap().push(after);
        let next = {
            let mut script = self.script.lock().unwrap();
            if script.is_empty() {
                None
            } else {
                Some(script.remove(0))
            }
        };
        Box::pin(async move {
            match next {
                Some(answer) => answer,
                None => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    Ok(Vec::new())
                }
            }
        })
    }
}

/// A delivery as a relay serves it: the relay keeps no `Authorization` header.
fn delivery(sequence: u64, body: &str) -> Delivery {
    Delivery {
        sequence,
        received_at: SystemTime::now(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.as_bytes().to_vec(),
    }
}

/// Runs `plan` against a mailbox answering from `script`, retrying the relay with `backoff`.
async fn run_scripted(
    plan: hookgate_config::Plan,
    script: Vec<Result<Vec<Delivery>, MailboxError>>,
    backoff: Backoff,
) -> (RunReport, Arc<ScriptedMailbox>, Recorder) {
    let settings = RunSettings {
        relay_backoff: backoff,
        ..RunSettings::default()
    };
    run_scripted_with(plan, script, settings).await
}

/// Runs `plan` with `settings` against a mailbox answering from `script`.
async fn run_scripted_with(
    plan: hookgate_config::Plan,
    script: Vec<Result<Vec<Delivery>, MailboxError>>,
    settings: RunSettings,
) -> (RunReport, Arc<ScriptedMailbox>, Recorder) {
    let mailbox = Arc::new(ScriptedMailbox {
        script: Mutex::new(script),
        opened: Mutex::default(),
        waited_after: Mutex::default(),
    });
    let recorder = Recorder::default();
    let report = Runner::new(plan, settings)
        .with_mailbox(mailbox.clone())
        .with_reporter(Box::new(recorder.clone()))
        .run()
        .await
        .unwrap();
    (report, mailbox, recorder)
}

#[tokio::test]
async fn a_callback_verdict_survives_relay_outages_and_ignores_forgeries() {
    let service = Service::start(|_, _| Reply::status(202)).await;
    let url = &service.url;
    let yaml = format!(
        r#"targets:
  staging:
    constraints:
      afterDeployment:
        - runWebhook: {{name: tests}}
webhooks:
  - name: tests
    uriTemplate: {url}/run
    bodyTemplate:
      inline: '{{"callback": "{{{{ callback.uri }}}}", "token": "{{{{ callback.token }}}}"}}'
"#
    );
    let loaded = hookgate_config::load_str("deploy.yml", &yaml).unwrap();
    let plan = hookgate_config::plan(&loaded.file, "staging", Phase::AfterDeployment).unwrap();
    let script = vec![
        Err(MailboxError::Transient("connection refused".into())),
        Err(MailboxError::Transient("HTTP 503".into())),
        Ok(vec![delivery(1, r#"{"success": "yes"}"#)]),
        Ok(vec![delivery(
            2,
            &format!(r#"{{"success": false, "mdMessage": "2 failed; token was {SLOT_TOKEN}"}}"#),
        )]),
    ];
    let backoff = Backoff {
        base: Duration::from_millis(10),
        max: Duration::from_millis(20),
    };
    let (report, mailbox, recorder) = run_scripted(plan, script, backoff).await;

    assert_eq!(report.conclusion, Conclusion::Failure);
    assert_eq!(report.outcomes[0].1.message, "2 failed; token was ***");
    let opened = mailbox.opened.lock().unwrap();
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0].auth, CallbackAuth::Bearer);
    assert_eq!(opened[0].label, "tests");
    // The long poll asks only for what it has not seen.
    assert_eq!(*mailbox.waited_after.lock().unwrap(), vec![0, 0, 0, 1]);
    let sent: serde_json::Value = serde_json::from_str(&service.requests()[0].body).unwrap();
    assert_eq!(
        sent["callback"],
        "https://relay.example/v1/callbacks/slot-1"
    );
    assert_eq!(sent["token"], SLOT_TOKEN);

    let progress = recorder.progress();
    let events = recorder.0.lock().unwrap();
    assert_eq!(
        progress
            .iter()
            .filter(|m| m.starts_with("relay unavailable"))
            .count(),
        2,
        "{progress:?}"
    );
    assert!(
        progress
            .iter()
            .any(|m| m.contains("ignored callback #1: `success` must be true or false")),
        "{progress:?}"
    );
    let kinds: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::RunStarted { .. } => Some("run-started"),
            Event::StepStarted { .. } => Some("step-started"),
            Event::StepFinished { .. } => Some("step-finished"),
            Event::RunFinished { .. } => Some("run-finished"),
            Event::StepProgress { .. } => None,
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "run-started",
            "step-started",
            "step-finished",
            "run-finished"
        ]
    );
    let serialized = serde_json::to_string(&*events).unwrap();
    assert!(!serialized.contains(SLOT_TOKEN), "{serialized}");
}

#[tokio::test]
async fn a_run_without_a_mailbox_for_a_callback_step_does_not_start() {
    let yaml = "targets:\n  t:\n    constraints:\n      beforeDeployment:\n        - runWebhook: {name: w}\nwebhooks:\n  - name: w\n    uriTemplate: http://127.0.0.1:9/\n";
    let loaded = hookgate_config::load_str("deploy.yml", yaml).unwrap();
    let plan = hookgate_config::plan(&loaded.file, "t", Phase::BeforeDeployment).unwrap();
    let err = Runner::new(plan, RunSettings::default())
        .run()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("`w`"), "{err}");
}

/// A relay that answers every long poll at once with what the gate has already seen (the same
/// sequence again, and an older one): the gate acts on each delivery once, asks again only after
/// a pause that grows, says so once, and still takes the verdict when it comes.
#[tokio::test]
async fn a_relay_repeating_old_deliveries_costs_neither_polls_nor_log_lines() {
    let service = Service::start(|_, _| Reply::status(202)).await;
    let url = &service.url;
    let yaml = format!(
        "targets:\n  staging:\n    constraints:\n      afterDeployment:\n        - runWebhook: {{name: tests}}\nwebhooks:\n  - name: tests\n    uriTemplate: {url}/run\n"
    );
    let loaded = hookgate_config::load_str("deploy.yml", &yaml).unwrap();
    let plan = hookgate_config::plan(&loaded.file, "staging", Phase::AfterDeployment).unwrap();
    let mut script = vec![Ok(vec![delivery(3, r#"{"success": "maybe"}"#)])];
    for _ in 0..8 {
        script.push(Ok(vec![
            delivery(3, r#"{"success": "maybe"}"#),
            delivery(1, r#"{"success": true}"#),
        ]));
    }
    script.push(Ok(vec![delivery(4, r#"{"success": false}"#)]));
    let backoff = Backoff {
        base: Duration::from_millis(40),
        max: Duration::from_millis(320),
    };
    let started = std::time::Instant::now();
    let (report, mailbox, recorder) = run_scripted(plan, script, backoff).await;
    // The old success (sequence 1, served after 3) never counts: the verdict is sequence 4's.
    assert_eq!(report.conclusion, Conclusion::Failure);
    assert_eq!(
        *mailbox.waited_after.lock().unwrap(),
        [0, 3, 3, 3, 3, 3, 3, 3, 3, 3]
    );
    // Eight pauses that grow from 40 ms towards 320 ms (with jitter, at least half of each).
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    let progress = recorder.progress();
    let count = |text: &str| progress.iter().filter(|m| m.contains(text)).count();
    assert_eq!(count("ignored callback #3"), 1, "{progress:?}");
    assert_eq!(count("ignored callback #1"), 0, "{progress:?}");
    assert_eq!(count("with nothing new"), 1, "{progress:?}");
}

/// Progress callbacks are heard while the wait goes on; outputs of every verified callback
/// reach `steps['NAME'].outputs`, masked in the outcome where they hold a secret, and what does
/// not fit GitHub's output names is left out with a note.
#[tokio::test]
async fn progress_is_heard_and_outputs_reach_later_steps_masked_in_the_outcome() {
    const SECRET: &str = "s3cret-in-an-output";
    let service = Service::start(|_, _| Reply::status(202)).await;
    let url = &service.url;
    let yaml = format!(
        r#"targets:
  staging:
    constraints:
      afterDeployment:
        - runWebhook: {{name: tests}}
        - runWebhook: {{name: next}}
webhooks:
  - name: tests
    uriTemplate: {url}/run
  - name: next
    uriTemplate: "{url}/next/{{{{ steps['tests'].outputs.build }}}}"
    waitFor: none
"#
    );
    let loaded = hookgate_config::load_str("deploy.yml", &yaml).unwrap();
    let plan = hookgate_config::plan(&loaded.file, "staging", Phase::AfterDeployment).unwrap();
    let script = vec![
        Ok(vec![delivery(
            1,
            r#"{"final": false, "mdMessage": "building", "outputs": {"build": "41", "bad name": "x"}}"#,
        )]),
        Ok(vec![delivery(
            2,
            &format!(r#"{{"success": true, "outputs": {{"build": "42", "token": "{SECRET}"}}}}"#),
        )]),
    ];
    let settings = RunSettings {
        secrets: [("api".to_owned(), SECRET.to_owned())]
            .into_iter()
            .collect(),
        ..RunSettings::default()
    };
    let (report, _, recorder) = run_scripted_with(plan, script, settings).await;
    assert_eq!(report.conclusion, Conclusion::Success);
    let outputs = &report.outcomes[0].1.outputs;
    assert_eq!(outputs.get("build").map(String::as_str), Some("42"));
    assert_eq!(outputs.get("token").map(String::as_str), Some("***"));
    assert!(!outputs.contains_key("bad name"));
    assert_eq!(
        service.requests_to("/next/42").len(),
        1,
        "{:?}",
        service.requests()
    );
    let progress = recorder.progress();
    assert!(progress.iter().any(|m| m == "building"), "{progress:?}");
    assert!(
        progress
            .iter()
            .any(|m| m.starts_with("output `bad name` left out")),
        "{progress:?}"
    );
    let events = serde_json::to_string(&*recorder.0.lock().unwrap()).unwrap();
    assert!(!events.contains(SECRET), "{events}");
}
