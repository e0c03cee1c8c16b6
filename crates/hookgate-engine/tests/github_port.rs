//! The engine's GitHub webhook kinds in process, against a fake [`GithubPort`]: what is
//! dispatched (rendered, sent once), how a failed dispatch ends the step without a second send,
//! how a started workflow run is followed to its conclusion, and how later steps read an earlier
//! dispatch's answer (`steps['NAME']`) and its conditions.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use hookgate_config::Phase;
use hookgate_engine::github::{
    Dispatch, Dispatched, FailedJob, GithubError, GithubPort, WorkflowRun,
};
use hookgate_engine::{Conclusion, RunReport, RunSettings, Runner};
use serde_json::json;

/// A GitHub that answers dispatches and run reads from scripts, and keeps what it was asked.
#[derive(Default)]
struct FakeGithub {
    dispatch_answers: Mutex<Vec<Result<Dispatched, GithubError>>>,
    run_answers: Mutex<Vec<Result<WorkflowRun, GithubError>>>,
    dispatched: Mutex<Vec<Dispatch>>,
    runs_read: Mutex<Vec<(String, u64)>>,
    failed_jobs: Mutex<Vec<FailedJob>>,
    cancelled: Mutex<Vec<(String, u64)>>,
    /// Answers of run lookups, one per call; asked: (repository, workflow, ref).
    lookups: Mutex<Vec<Option<u64>>>,
    looked_up: Mutex<Vec<(String, String, String)>>,
}

impl GithubPort for FakeGithub {
    fn repository(&self) -> Option<&str> {
        Some("octo/app")
    }

    fn dispatch<'a>(
        &'a self,
        dispatch: &'a Dispatch,
        _progress: &'a (dyn Fn(String) + Send + Sync),
    ) -> BoxFuture<'a, Result<Dispatched, GithubError>> {
        self.dispatched.lock().unwrap().push(dispatch.clone());
        let answer = self.dispatch_answers.lock().unwrap().remove(0);
        Box::pin(async move { answer })
    }

    fn workflow_run<'a>(
        &'a self,
        repository: &'a str,
        run_id: u64,
    ) -> BoxFuture<'a, Result<WorkflowRun, GithubError>> {
        self.runs_read
            .lock()
            .unwrap()
            .push((repository.to_owned(), run_id));
        // The last answer repeats.
        let answer = {
            let mut answers = self.run_answers.lock().unwrap();
            if answers.len() > 1 {
                answers.remove(0)
            } else {
                answers[0].clone()
            }
        };
        Box::pin(async move { answer })
    }

    fn failed_jobs<'a>(
        &'a self,
        _repository: &'a str,
        _run_id: u64,
    ) -> BoxFuture<'a, Result<Vec<FailedJob>, GithubError>> {
        let jobs = self.failed_jobs.lock().unwrap().clone();
        Box::pin(async move { Ok(jobs) })
    }

    fn latest_dispatched_run<'a>(
        &'a self,
        repository: &'a str,
        workflow: &'a str,
        git_ref: &'a str,
        _since: std::time::SystemTime,
    ) -> BoxFuture<'a, Result<Option<u64>, GithubError>> {
        self.looked_up.lock().unwrap().push((
            repository.to_owned(),
            workflow.to_owned(),
            git_ref.to_owned(),
        ));
        let answer = self.lookups.lock().unwrap().remove(0);
        Box::pin(async move { Ok(answer) })
    }

    fn cancel_run<'a>(
        &'a self,
        repository: &'a str,
        run_id: u64,
    ) -> BoxFuture<'a, Result<(), GithubError>> {
        self.cancelled
            .lock()
            .unwrap()
            .push((repository.to_owned(), run_id));
        Box::pin(async { Ok(()) })
    }
}

fn run_state(status: &str, conclusion: Option<&str>) -> Result<WorkflowRun, GithubError> {
    Ok(WorkflowRun {
        status: status.to_owned(),
        conclusion: conclusion.map(str::to_owned),
        html_url: Some("https://github.com/octo/load/actions/runs/77".to_owned()),
    })
}

async fn run(yaml: &str, github: Arc<FakeGithub>) -> RunReport {
    run_with(yaml, github, None).await
}

/// Runs target `staging` before deployment with `context.suite = smoke`, and `mailbox` if any.
async fn run_with(
    yaml: &str,
    github: Arc<FakeGithub>,
    mailbox: Option<Arc<dyn hookgate_engine::Mailbox>>,
) -> RunReport {
    let loaded = hookgate_config::load_str("deploy.yml", yaml).unwrap();
    let plan = hookgate_config::plan(&loaded.file, "staging", Phase::BeforeDeployment).unwrap();
    let mut settings = RunSettings::default();
    settings.context.insert("suite".into(), json!("smoke"));
    let mut runner = Runner::new(plan, settings).with_github(github);
    if let Some(mailbox) = mailbox {
        runner = runner.with_mailbox(mailbox);
    }
    runner.run().await.unwrap()
}

#[tokio::test]
async fn a_started_run_is_followed_and_a_later_step_reads_the_answer() {
    let github = Arc::new(FakeGithub {
        dispatch_answers: Mutex::new(vec![
            Ok(Dispatched {
                status: 200,
                body: json!({"workflow_run_id": 77, "run_url": "https://api/runs/77"}),
            }),
            Ok(Dispatched {
                status: 204,
                body: json!(null),
            }),
        ]),
        run_answers: Mutex::new(vec![
            run_state("queued", None),
            run_state("in_progress", None),
            run_state("completed", Some("success")),
        ]),
        ..FakeGithub::default()
    });
    let yaml = r#"
targets:
  staging:
    constraints:
      beforeDeployment:
        - runWebhook: {name: load}
        - runWebhook:
            name: notify
            if: "{{ steps['load'].status == 200 and steps['load'].body.workflow_run_id == 77 }}"
        - runWebhook:
            name: never
            if: "{{ steps['load'].conclusion != 'success' }}"
webhooks:
  - name: load
    workflowDispatch:
      workflow: load.yml
      ref: main
      inputs:
        suite: "{{ context.suite }}"
    waitFor: workflowRun
    poll: {interval: 50ms}
  - name: notify
    repositoryDispatch:
      repository: octo/notices
      eventType: load-done
      clientPayload:
        run: "{{ steps['load'].body.run_url }}"
    waitFor: none
  - name: never
    repositoryDispatch:
      repository: octo/notices
      eventType: never
    waitFor: none
"#;
    let report = run(yaml, github.clone()).await;
    let conclusions: Vec<Conclusion> = report.outcomes.iter().map(|(_, o)| o.conclusion).collect();
    assert_eq!(
        conclusions,
        [
            Conclusion::Success,
            Conclusion::Success,
            Conclusion::Skipped
        ],
        "{:?}",
        report.outcomes
    );
    assert!(
        report.outcomes[0].1.message.contains("concluded `success`"),
        "{}",
        report.outcomes[0].1.message
    );
    let dispatched = github.dispatched.lock().unwrap();
    assert_eq!(
        *dispatched,
        [
            Dispatch {
                repository: "octo/app".into(),
                path: "/repos/octo/app/actions/workflows/load.yml/dispatches".into(),
                body: json!({"ref": "main", "inputs": {"suite": "smoke"}, "return_run_details": true}),
            },
            Dispatch {
                repository: "octo/notices".into(),
                path: "/repos/octo/notices/dispatches".into(),
                body: json!({"event_type": "load-done", "client_payload": {"run": "https://api/runs/77"}}),
            },
        ]
    );
    assert_eq!(
        *github.runs_read.lock().unwrap(),
        vec![("octo/app".to_owned(), 77); 3]
    );
}

/// Whether a dispatch may be sent again is the GitHub client's to decide (it knows whether
/// GitHub acted); the engine's `retryCount`, made for webhooks with an idempotency key, never
/// sends one again.
#[tokio::test]
async fn a_failed_dispatch_is_not_retried_by_the_engine_whatever_its_retry_count() {
    let github = Arc::new(FakeGithub {
        dispatch_answers: Mutex::new(vec![
            Err(GithubError::Unavailable {
                reason: "POST /repos/octo/tests/dispatches: connection reset".into(),
                wait: None,
            }),
            Ok(Dispatched {
                status: 204,
                body: json!(null),
            }),
        ]),
        ..FakeGithub::default()
    });
    let yaml = r#"
targets:
  staging:
    constraints:
      beforeDeployment:
        - runWebhook: {name: tests}
webhooks:
  - name: tests
    repositoryDispatch:
      repository: octo/tests
      eventType: run-tests
    waitFor: none
    retryCount: 5
"#;
    let report = run(yaml, github.clone()).await;
    assert_eq!(report.conclusion, Conclusion::Failure);
    assert!(
        report.outcomes[0].1.message.contains("connection reset"),
        "{}",
        report.outcomes[0].1.message
    );
    assert_eq!(github.dispatched.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_run_that_cannot_be_read_fails_the_step_with_the_reason() {
    let github = Arc::new(FakeGithub {
        dispatch_answers: Mutex::new(vec![Ok(Dispatched {
            status: 200,
            body: json!({"workflow_run_id": 5}),
        })]),
        run_answers: Mutex::new(vec![Err(GithubError::Status {
            status: 404,
            message: "GET /repos/octo/app/actions/runs/5: HTTP 404: Not Found".into(),
        })]),
        ..FakeGithub::default()
    });
    let yaml = r#"
targets:
  staging:
    constraints:
      beforeDeployment:
        - runWebhook: {name: load}
webhooks:
  - name: load
    workflowDispatch: {workflow: load.yml, ref: main}
    waitFor: workflowRun
"#;
    let report = run(yaml, github).await;
    assert_eq!(report.conclusion, Conclusion::Failure);
    assert!(
        report.outcomes[0].1.message.contains(
            "cannot read workflow run 5 of octo/app: GET /repos/octo/app/actions/runs/5: HTTP 404"
        ),
        "{}",
        report.outcomes[0].1.message
    );
}

#[tokio::test]
async fn a_failed_run_names_its_failed_jobs_and_steps_with_links() {
    let github = Arc::new(FakeGithub {
        dispatch_answers: Mutex::new(vec![Ok(Dispatched {
            status: 200,
            body: json!({"workflow_run_id": 91}),
        })]),
        run_answers: Mutex::new(vec![run_state("completed", Some("failure"))]),
        failed_jobs: Mutex::new(vec![
            FailedJob {
                name: "e2e".into(),
                conclusion: "failure".into(),
                html_url: Some("https://github.com/octo/app/actions/runs/91/job/5".into()),
                failed_steps: vec!["4 `Run suites`".into()],
            },
            FailedJob {
                name: "lint".into(),
                conclusion: "cancelled".into(),
                html_url: None,
                failed_steps: Vec::new(),
            },
        ]),
        ..FakeGithub::default()
    });
    let yaml = "targets:\n  staging:\n    constraints:\n      beforeDeployment:\n        - runWebhook: {name: load}\nwebhooks:\n  - name: load\n    workflowDispatch: {workflow: load.yml, ref: main}\n    waitFor: workflowRun\n";
    let report = run(yaml, github).await;
    assert_eq!(report.conclusion, Conclusion::Failure);
    assert_eq!(
        report.outcomes[0].1.message,
        "workflow run https://github.com/octo/load/actions/runs/77 concluded `failure`; not passed: job `e2e` `failure` (https://github.com/octo/app/actions/runs/91/job/5): step 4 `Run suites`; job `lint` `cancelled`"
    );
}

#[tokio::test]
async fn a_gate_ending_early_cancels_the_run_it_started_and_dispatches_the_cancel_event() {
    let github = Arc::new(FakeGithub {
        dispatch_answers: Mutex::new(vec![
            Ok(Dispatched {
                status: 200,
                body: json!({"workflow_run_id": 92}),
            }),
            Ok(Dispatched {
                status: 204,
                body: json!(null),
            }),
            Ok(Dispatched {
                status: 204,
                body: json!(null),
            }),
        ]),
        run_answers: Mutex::new(vec![run_state("in_progress", None)]),
        ..FakeGithub::default()
    });
    // A run that never ends, past its timeout.
    let yaml = r#"
targets:
  staging:
    constraints:
      beforeDeployment:
        - runWebhook: {name: load}
webhooks:
  - name: load
    workflowDispatch: {workflow: load.yml, ref: main}
    waitFor: workflowRun
    timeout: 300ms
"#;
    let started = std::time::Instant::now();
    let report = run(yaml, github.clone()).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(report.outcomes[0].1.conclusion, Conclusion::TimedOut);
    assert!(
        report.outcomes[0]
            .1
            .message
            .ends_with("; workflow run 92 of octo/app cancelled"),
        "{}",
        report.outcomes[0].1.message
    );
    assert_eq!(
        *github.cancelled.lock().unwrap(),
        [("octo/app".to_owned(), 92)]
    );

    // A dispatch whose callback never comes, past its timeout: the cancel event goes out with
    // the same client payload.
    let yaml = r#"
targets:
  staging:
    constraints:
      beforeDeployment:
        - runWebhook: {name: scan}
webhooks:
  - name: scan
    repositoryDispatch:
      repository: octo/scanner
      eventType: scan
      cancelEventType: "scan-cancel-{{ context.suite }}"
      clientPayload: {suite: "{{ context.suite }}", callback: "{{ callback.uri }}"}
    timeout: 300ms
"#;
    let report = run_with(yaml, github.clone(), Some(Arc::new(common::SilentMailbox))).await;
    assert_eq!(report.outcomes[0].1.conclusion, Conclusion::TimedOut);
    assert!(
        report.outcomes[0]
            .1
            .message
            .ends_with("; `scan-cancel-smoke` dispatched to octo/scanner"),
        "{}",
        report.outcomes[0].1.message
    );
    let dispatched = github.dispatched.lock().unwrap();
    let payload =
        json!({"suite": "smoke", "callback": "https://relay.example/v1/callbacks/silent"});
    assert_eq!(
        dispatched[1..],
        [
            Dispatch {
                repository: "octo/scanner".into(),
                path: "/repos/octo/scanner/dispatches".into(),
                body: json!({"event_type": "scan", "client_payload": payload}),
            },
            Dispatch {
                repository: "octo/scanner".into(),
                path: "/repos/octo/scanner/dispatches".into(),
                body: json!({"event_type": "scan-cancel-smoke", "client_payload": payload}),
            },
        ]
    );
}

/// GitHub Enterprise Server versions without `return_run_details` answer a dispatch with 204 and
/// no run id: the run is looked up (the newest of that workflow and ref), then followed.
#[tokio::test]
async fn without_run_details_the_dispatched_run_is_looked_up_and_followed() {
    let github = Arc::new(FakeGithub {
        dispatch_answers: Mutex::new(vec![Ok(Dispatched {
            status: 204,
            body: json!(null),
        })]),
        lookups: Mutex::new(vec![None, Some(93)]),
        run_answers: Mutex::new(vec![run_state("completed", Some("success"))]),
        ..FakeGithub::default()
    });
    let yaml = "targets:\n  staging:\n    constraints:\n      beforeDeployment:\n        - runWebhook: {name: load}\nwebhooks:\n  - name: load\n    workflowDispatch: {workflow: load.yml, ref: main}\n    waitFor: workflowRun\n";
    let report = run(yaml, github.clone()).await;
    assert_eq!(
        report.conclusion,
        Conclusion::Success,
        "{:?}",
        report.outcomes
    );
    assert_eq!(
        *github.looked_up.lock().unwrap(),
        vec![
            (
                "octo/app".to_owned(),
                "load.yml".to_owned(),
                "main".to_owned()
            );
            2
        ]
    );
    assert_eq!(
        *github.runs_read.lock().unwrap(),
        [("octo/app".to_owned(), 93)]
    );
}

#[tokio::test]
async fn a_dispatch_that_may_have_been_sent_before_a_restart_is_not_sent_again() {
    let github = Arc::new(FakeGithub::default());
    let yaml = "targets:\n  staging:\n    constraints:\n      beforeDeployment:\n        - runWebhook: {name: notify}\nwebhooks:\n  - name: notify\n    repositoryDispatch:\n      repository: octo/tests\n      eventType: run-tests\n    waitFor: none\n";
    let journal = common::MemoryJournal::default();
    journal.records.lock().unwrap().insert(
        "notify".to_owned(),
        hookgate_engine::StepRecord::Sending {
            idempotency_key: "k".to_owned(),
        },
    );
    let report = Runner::new(
        common::plan(yaml, Phase::BeforeDeployment),
        RunSettings::default(),
    )
    .with_github(github.clone())
    .with_journal(Arc::new(journal))
    .run()
    .await
    .unwrap();
    assert_eq!(report.conclusion, Conclusion::Failure);
    assert!(
        github.dispatched.lock().unwrap().is_empty(),
        "dispatched twice"
    );
    let message = &report.outcomes[0].1.message;
    assert!(message.contains("not sent again"), "{message}");
}
