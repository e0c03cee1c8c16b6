//! What the engine's in-process tests share: a scripted HTTP service on 127.0.0.1 standing in for
//! the services a deployment file calls, a reporter that keeps every event, and a way to run a
//! plan from YAML text.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use futures::future::BoxFuture;
use hookgate_config::Phase;
use hookgate_engine::{
    Event, Journal, Mailbox, MailboxError, Reporter, RunReport, RunSettings, Runner, StepRecord,
};
use hookgate_protocol::{CreateSlot, Deadline, Delivery, SlotCreated, SlotId};
use tokio_util::sync::CancellationToken;

/// A request the service received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The method.
    pub method: String,
    /// The path and query.
    pub path: String,
    /// The headers.
    pub headers: HeaderMap,
    /// The body as text.
    pub body: String,
    /// When it arrived.
    pub at: Instant,
}

impl Seen {
    /// The header's value, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What the service answers.
#[derive(Debug, Clone)]
pub struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    delay: Duration,
}

impl Reply {
    /// An empty answer with `status`.
    pub fn status(status: u16) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
        }
    }

    /// A 200 answer with a JSON body.
    pub fn json(body: serde_json::Value) -> Self {
        Reply::status(200)
            .with_header("content-type", "application/json")
            .with_body(&body.to_string())
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    /// Sets the body.
    pub fn with_body(mut self, body: &str) -> Self {
        self.body = body.to_owned();
        self
    }

    /// Answers only after `delay`.
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

type Answer = dyn Fn(&Seen, &[Seen]) -> Reply + Send + Sync;

/// A service answering each request with what `answer` makes of it and the requests before.
pub struct Service {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Service {
    /// Starts the service on a free port.
    pub async fn start(answer: impl Fn(&Seen, &[Seen]) -> Reply + Send + Sync + 'static) -> Self {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let answer: Arc<Answer> = Arc::new(answer);
        let log = seen.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let (log, answer) = (log.clone(), answer.clone());
                async move {
                    let request = Seen {
                        method: method.to_string(),
                        path: uri
                            .path_and_query()
                            .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned()),
                        headers,
                        body: String::from_utf8_lossy(&body).into_owned(),
                        at: Instant::now(),
                    };
                    let reply = {
                        let mut log = log.lock().unwrap();
                        let reply = answer(&request, &log);
                        log.push(request);
                        reply
                    };
                    tokio::time::sleep(reply.delay).await;
                    let mut answer =
                        (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
                    for (name, value) in reply.headers {
                        answer.headers_mut().insert(name, value.parse().unwrap());
                    }
                    answer
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Service { url, seen }
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The requests whose path starts with `prefix`.
    pub fn requests_to(&self, prefix: &str) -> Vec<Seen> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.starts_with(prefix))
            .collect()
    }
}

/// Keeps every event.
#[derive(Clone, Default)]
pub struct Recorder(pub Arc<Mutex<Vec<Event>>>);

impl Recorder {
    /// The progress messages heard, in order.
    pub fn progress(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                Event::StepProgress { message, .. } => Some(message.clone()),
                _ => None,
            })
            .collect()
    }
}

impl Reporter for Recorder {
    fn report(&self, event: &Event) -> BoxFuture<'_, ()> {
        self.0.lock().unwrap().push(event.clone());
        Box::pin(async {})
    }
}

/// Plans `phase` of target `staging` in the deployment file `yaml`.
pub fn plan(yaml: &str, phase: Phase) -> hookgate_config::Plan {
    let loaded = hookgate_config::load_str("deploy.yml", yaml).unwrap();
    hookgate_config::plan(&loaded.file, "staging", phase).unwrap()
}

/// Runs `phase` of target `staging` in `yaml` with `settings`, until done or `cancel`.
pub async fn run_until(
    yaml: &str,
    phase: Phase,
    settings: RunSettings,
    cancel: CancellationToken,
) -> (RunReport, Recorder) {
    let recorder = Recorder::default();
    let report = Runner::new(plan(yaml, phase), settings)
        .with_reporter(Box::new(recorder.clone()))
        .with_cancellation(cancel)
        .run()
        .await
        .unwrap();
    (report, recorder)
}

/// Runs `phase` of target `staging` in `yaml` with `settings`.
pub async fn run(yaml: &str, phase: Phase, settings: RunSettings) -> (RunReport, Recorder) {
    run_until(yaml, phase, settings, CancellationToken::new()).await
}

/// A file whose target `staging` runs webhook `name` before deployment; `webhook` holds its YAML
/// lines under `- name: ...`, indented by 4.
pub fn one_step(name: &str, webhook: &str) -> String {
    format!(
        "targets:\n  staging:\n    constraints:\n      beforeDeployment:\n        - runWebhook:\n            name: {name}\nwebhooks:\n  - name: {name}\n{webhook}"
    )
}

/// Gaps between consecutive requests.
pub fn gaps(requests: &[Seen]) -> Vec<Duration> {
    requests
        .windows(2)
        .map(|pair| pair[1].at.duration_since(pair[0].at))
        .collect()
}

/// A relay that opens slots and never delivers a callback.
pub struct SilentMailbox;

impl Mailbox for SilentMailbox {
    fn open(&self, request: CreateSlot) -> BoxFuture<'_, Result<SlotCreated, MailboxError>> {
        Box::pin(async move {
            let deadline = match request.deadline {
                Deadline::At(instant) => instant,
                Deadline::In(seconds) => {
                    std::time::SystemTime::now() + Duration::from_secs(seconds)
                }
            };
            Ok(SlotCreated {
                id: SlotId::random(),
                callback_url: "https://relay.example/v1/callbacks/silent".into(),
                deadline,
                auth: request.auth,
                token: Some("silent-token".into()),
                read_token: "silent-read-token".into(),
            })
        })
    }

    fn wait<'a>(
        &'a self,
        _slot: &'a SlotCreated,
        _after: u64,
        wait: Duration,
    ) -> BoxFuture<'a, Result<Vec<Delivery>, MailboxError>> {
        Box::pin(async move {
            tokio::time::sleep(wait).await;
            Ok(Vec::new())
        })
    }
}

/// A journal in memory; `refuse` makes every write fail.
#[derive(Default, Clone)]
pub struct MemoryJournal {
    pub records: Arc<Mutex<HashMap<String, StepRecord>>>,
    pub refuse: bool,
}

impl Journal for MemoryJournal {
    fn recall<'a>(&'a self, step: &'a str) -> BoxFuture<'a, Result<Option<StepRecord>, String>> {
        let found = self.records.lock().unwrap().get(step).cloned();
        Box::pin(async move { Ok(found) })
    }

    fn record<'a>(
        &'a self,
        step: &'a str,
        record: &'a StepRecord,
    ) -> BoxFuture<'a, Result<(), String>> {
        let result = if self.refuse {
            Err("the disk is full".to_owned())
        } else {
            self.records
                .lock()
                .unwrap()
                .insert(step.to_owned(), record.clone());
            Ok(())
        };
        Box::pin(async move { result })
    }
}
