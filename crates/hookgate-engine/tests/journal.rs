//! A run with a journal resumes where an earlier attempt stopped, in process against a scripted
//! service: a finished step is not run again (its result still feeds `steps[...]`), an answered
//! request is not sent again, a request that may have been sent goes again with the key it had,
//! and a journal that cannot be written stops the step before anything is sent.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{MemoryJournal, Reply, Service, plan};
use hookgate_config::Phase;
use hookgate_engine::{Conclusion, RunSettings, Runner, StepRecord};

/// Two steps in order: `first` answers with an id, `second` sends that id back.
fn two_steps(service: &Service) -> String {
    format!(
        "targets:\n  staging:\n    constraints:\n      beforeDeployment:\n        - runWebhook:\n            name: first\n        - runWebhook:\n            name: second\nwebhooks:\n  - name: first\n    uriTemplate: {url}/first\n    waitFor: none\n  - name: second\n    method: POST\n    uriTemplate: {url}/second\n    bodyTemplate:\n      inline: '{{\"id\": \"{{{{ steps.first.body.id }}}}\"}}'\n    waitFor: none\n",
        url = service.url
    )
}

async fn run_with(yaml: &str, journal: &MemoryJournal) -> hookgate_engine::RunReport {
    Runner::new(plan(yaml, Phase::BeforeDeployment), RunSettings::default())
        .with_journal(Arc::new(journal.clone()))
        .run()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_finished_step_is_not_run_again_and_its_result_is_kept() {
    let service = Service::start(|seen, _| match seen.path.as_str() {
        "/first" => Reply::json(serde_json::json!({"id": "build-17"})),
        _ => Reply::status(500),
    })
    .await;
    let yaml = two_steps(&service);
    let journal = MemoryJournal::default();
    let report = run_with(&yaml, &journal).await;
    assert_eq!(report.conclusion, Conclusion::Failure);
    assert_eq!(service.requests_to("/first").len(), 1);

    // The second attempt of the same run: `first` is taken from the journal.
    journal.records.lock().unwrap().remove("second");
    let report = run_with(&yaml, &journal).await;
    assert_eq!(
        service.requests_to("/first").len(),
        1,
        "a finished step ran again"
    );
    assert_eq!(report.outcomes[0].1.conclusion, Conclusion::Success);
    let second = service.requests_to("/second");
    assert_eq!(second.len(), 2);
    let body: serde_json::Value = serde_json::from_str(&second[1].body).unwrap();
    assert_eq!(body["id"], "build-17", "steps['first'] was lost");
}

#[tokio::test]
async fn an_answered_request_is_not_sent_again_and_a_sent_one_keeps_its_key() {
    let service = Service::start(|_, _| Reply::json(serde_json::json!({"id": "x"}))).await;
    let yaml = two_steps(&service);
    let journal = MemoryJournal::default();
    run_with(&yaml, &journal).await;
    let key = service.requests_to("/second")[0]
        .header("idempotency-key")
        .unwrap()
        .to_owned();

    // Stopped after `second` was answered: it is not sent again.
    let answered = journal.records.lock().unwrap().get("second").cloned();
    let Some(StepRecord::Finished { .. }) = answered else {
        panic!("the step's end was not written down: {answered:?}");
    };
    let response = hookgate_engine::RecordedResponse {
        status: 200,
        headers: Vec::new(),
        body: "{}".to_owned(),
        url: format!("{}/second", service.url),
    };
    journal.records.lock().unwrap().insert(
        "second".to_owned(),
        StepRecord::Answered {
            idempotency_key: key.clone(),
            response,
        },
    );
    let report = run_with(&yaml, &journal).await;
    assert_eq!(report.conclusion, Conclusion::Success);
    assert_eq!(
        service.requests_to("/second").len(),
        1,
        "an answered request was sent again"
    );

    // Stopped while `second` may have been in flight: sent again, with the same key.
    journal.records.lock().unwrap().insert(
        "second".to_owned(),
        StepRecord::Sending {
            idempotency_key: key.clone(),
        },
    );
    run_with(&yaml, &journal).await;
    let second = service.requests_to("/second");
    assert_eq!(second.len(), 2);
    assert_eq!(second[1].header("idempotency-key"), Some(key.as_str()));
}

#[tokio::test]
async fn nothing_is_sent_that_could_not_be_written_down() {
    let service = Service::start(|_, _| Reply::status(200)).await;
    let yaml = two_steps(&service);
    let journal = MemoryJournal {
        refuse: true,
        ..MemoryJournal::default()
    };
    let report = run_with(&yaml, &journal).await;
    assert_eq!(report.conclusion, Conclusion::Failure);
    assert!(
        service.requests().is_empty(),
        "a request went out unrecorded"
    );
    let message = &report.outcomes[0].1.message;
    assert!(message.contains("the disk is full"), "{message}");
}
