//! Running a plan: groups one after the other, the steps of a parallel group together (the first
//! failure cancels the others), each step rendered, sent, waited for and concluded, every change
//! sent as an event to the reporters (from a task of their own, so a slow reporter never holds a
//! gate).
//!
//! Cancellation (a signal, a failed sibling) and timeouts end a step where it is: the step's
//! future is dropped, and when its request may have reached the service, the webhook's `cancel:`
//! request is sent, best effort and briefly.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use hookgate_config::model::{CallbackAuthMode, HmacScheme, WaitFor, Webhook};
use hookgate_config::{Plan, PlannedStep, WebhookCall};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::callback::{self, CallbackCheck};
use crate::dispatch;
use crate::event::{Conclusion, Event, Reporter, StepInfo, StepOutcome};
use crate::github::{Dispatch, GithubPort};
use crate::journal::{Journal, RecordedResponse, StepRecord};
use crate::mailbox::{Mailbox, MailboxError};
use crate::mask::Masker;
use crate::outputs::Outputs;
use crate::poll::{self, PollIntervals};
use crate::request::{HttpRequest, HttpResponse, HttpSender, RequestFailure, RetryPolicy, excerpt};
use crate::settings::RunSettings;
use crate::template::{self, TemplateSite};
use hookgate_protocol::{CallbackAuth, CreateSlot, Deadline, SlotCreated};

/// How long reporters may take to catch up at the end of a run that was not cancelled.
const REPORTER_DRAIN: Duration = Duration::from_secs(60);

/// The latest deadline the engine keeps: a time limit longer than this never ends a step.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `start + limit`, or [`FOREVER`] after `start` when the limit is longer (a `timeout:` of a
/// billion years must not overflow the clock).
fn deadline_after(start: Instant, limit: Duration) -> Instant {
    start + limit.min(FOREVER)
}

/// Whether any step of `plan` waits for a callback (and so needs a relay).
pub fn needs_mailbox(plan: &Plan) -> bool {
    plan.steps().any(|step| match step {
        PlannedStep::Webhook(call) => call.wait == WaitFor::Callback,
        _ => false,
    })
}

/// Whether any step of `plan` calls GitHub's API (the dispatch kinds).
pub fn needs_github(plan: &Plan) -> bool {
    plan.steps().any(|step| match step {
        PlannedStep::Webhook(call) => {
            call.webhook.repository_dispatch.is_some() || call.webhook.workflow_dispatch.is_some()
        }
        _ => false,
    })
}

/// What reporters are told about every step of `plan`, in order.
pub fn step_infos(plan: &Plan) -> Vec<StepInfo> {
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut infos = Vec::new();
    let mut index = 0;
    for (group_index, group) in plan.groups.iter().enumerate() {
        for step in &group.steps {
            let (name, kind, wait) = match step {
                PlannedStep::Webhook(call) => (
                    call.step_name.clone(),
                    "webhook".to_owned(),
                    call.wait.as_str().to_owned(),
                ),
                PlannedStep::Pause { .. } => {
                    ("pause".to_owned(), "pause".to_owned(), String::new())
                }
                PlannedStep::NotHandled { step, .. } => (step.clone(), step.clone(), String::new()),
            };
            let name = if matches!(step, PlannedStep::Webhook(_)) {
                name
            } else {
                let count = seen.entry(name.clone()).or_insert(0);
                *count += 1;
                if *count == 1 {
                    name
                } else {
                    format!("{name}#{count}")
                }
            };
            infos.push(StepInfo {
                name,
                index,
                group: group_index,
                kind,
                wait_mode: wait,
            });
            index += 1;
        }
    }
    infos
}

/// Why a run cannot start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A step waits for a callback but there is no relay to receive it.
    #[error(
        "step(s) {steps} wait for a callback (`waitFor: callback`, Armory's default), but no relay is configured: pass --relay URL (and --relay-token), or set `waitFor: none` or `poll` on the webhook"
    )]
    NoMailbox {
        /// The steps, comma-separated.
        steps: String,
    },
    /// A step dispatches on GitHub but no API access was given.
    #[error(
        "step(s) {steps} dispatch on GitHub (repositoryDispatch/workflowDispatch) but no GitHub token is available: set GITHUB_TOKEN (or the action's `github-token` input), or `app-id` and `app-private-key` for a GitHub App"
    )]
    NoGithub {
        /// The steps, comma-separated.
        steps: String,
    },
    /// The HTTP client could not be built.
    #[error("{0}")]
    Client(String),
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The first non-passing step's conclusion, or success.
    pub conclusion: Conclusion,
    /// Every step's outcome, in plan order.
    pub outcomes: Vec<(StepInfo, StepOutcome)>,
}

/// Runs one plan.
pub struct Runner {
    plan: Plan,
    settings: RunSettings,
    masker: Masker,
    mailbox: Option<Arc<dyn Mailbox>>,
    github: Option<Arc<dyn GithubPort>>,
    reporters: Vec<Box<dyn Reporter>>,
    cancel: CancellationToken,
    journal: Option<Arc<dyn Journal>>,
    sender: Option<HttpSender>,
}

impl Runner {
    /// A runner for `plan` with `settings`.
    pub fn new(plan: Plan, settings: RunSettings) -> Self {
        Runner {
            plan,
            settings,
            masker: Masker::new(),
            mailbox: None,
            github: None,
            reporters: Vec::new(),
            cancel: CancellationToken::new(),
            journal: None,
            sender: None,
        }
    }

    /// Uses `masker` (shared with whoever prints) for secret values.
    pub fn with_masker(mut self, masker: Masker) -> Self {
        self.masker = masker;
        self
    }

    /// Where callbacks arrive (`waitFor: callback`).
    pub fn with_mailbox(mut self, mailbox: Arc<dyn Mailbox>) -> Self {
        self.mailbox = Some(mailbox);
        self
    }

    /// GitHub, for the dispatch kinds and `waitFor: workflowRun`.
    pub fn with_github(mut self, github: Arc<dyn GithubPort>) -> Self {
        self.github = Some(github);
        self
    }

    /// Adds a reporter.
    pub fn with_reporter(mut self, reporter: Box<dyn Reporter>) -> Self {
        self.reporters.push(reporter);
        self
    }

    /// Cancelling `token` cancels the run (a signal).
    pub fn with_cancellation(mut self, token: CancellationToken) -> Self {
        self.cancel = token;
        self
    }

    /// Writes each step's progress to `journal`, and resumes from what it holds: finished steps
    /// are not run again, an answered request is not sent again, and a request that may have
    /// been sent is sent again with the key it had.
    pub fn with_journal(mut self, journal: Arc<dyn Journal>) -> Self {
        self.journal = Some(journal);
        self
    }

    /// Sends the run's requests with `sender` (shared with other runs: a server running many
    /// gates keeps one connection pool) instead of one built from the settings' timeouts and
    /// outbound policy.
    pub fn with_http_sender(mut self, sender: HttpSender) -> Self {
        self.sender = Some(sender);
        self
    }

    /// The plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The masker.
    pub fn masker(&self) -> &Masker {
        &self.masker
    }

    /// Checks that everything the plan needs is there, before anything is sent.
    pub fn check(&self) -> Result<(), RunError> {
        let names = |pred: &dyn Fn(&WebhookCall) -> bool| -> String {
            self.plan
                .steps()
                .filter_map(|step| match step {
                    PlannedStep::Webhook(call) if pred(call) => {
                        Some(format!("`{}`", call.step_name))
                    }
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        if self.mailbox.is_none() && needs_mailbox(&self.plan) {
            return Err(RunError::NoMailbox {
                steps: names(&|call| call.wait == WaitFor::Callback),
            });
        }
        if self.github.is_none() && needs_github(&self.plan) {
            return Err(RunError::NoGithub {
                steps: names(&|call| {
                    call.webhook.repository_dispatch.is_some()
                        || call.webhook.workflow_dispatch.is_some()
                }),
            });
        }
        Ok(())
    }

    /// Runs the plan to its end (or its cancellation) and reports every step.
    pub async fn run(self) -> Result<RunReport, RunError> {
        self.check()?;
        for value in self.settings.secrets.values() {
            self.masker.add(value);
        }
        let sender = match self.sender {
            Some(sender) => sender,
            None => HttpSender::guarded(
                self.settings.request_timeouts,
                self.settings.outbound.clone(),
            )
            .map_err(RunError::Client)?,
        };
        let (events, mut receiver) = mpsc::unbounded_channel::<Event>();
        let reporters = self.reporters;
        let reporting = tokio::spawn(async move {
            while let Some(event) = receiver.recv().await {
                for reporter in &reporters {
                    reporter.report(&event).await;
                }
            }
        });
        let run_deadline = self
            .settings
            .run_timeout
            .map(|t| deadline_after(Instant::now(), t));
        let shared = Arc::new(Shared {
            settings: self.settings,
            masker: self.masker,
            sender,
            mailbox: self.mailbox,
            github: self.github,
            events,
            results: Mutex::new(Map::new()),
            run_deadline,
            run_cancel: self.cancel.clone(),
            journal: self.journal,
        });
        let infos = step_infos(&self.plan);
        shared.emit(Event::RunStarted {
            target: self.plan.target.clone(),
            phase: self.plan.phase.to_string(),
            steps: infos.clone(),
        });

        let mut outcomes: Vec<(StepInfo, StepOutcome)> = Vec::new();
        let mut stop: Option<String> = None;
        let mut info_iter = infos.into_iter();
        for group in &self.plan.groups {
            let members: Vec<(StepInfo, &PlannedStep)> = group
                .steps
                .iter()
                .filter_map(|step| info_iter.next().map(|info| (info, step)))
                .collect();
            if stop.is_none() {
                if self.cancel.is_cancelled() {
                    stop = Some("the run was cancelled".to_owned());
                } else if run_deadline.is_some_and(|d| Instant::now() >= d) {
                    stop = Some("the run's time limit passed".to_owned());
                }
            }
            if let Some(reason) = &stop {
                for (info, _) in members {
                    let outcome = StepOutcome::new(
                        Conclusion::Cancelled,
                        format!("not run: {reason}"),
                        None,
                        Duration::ZERO,
                    );
                    shared.finish(&info, &outcome);
                    outcomes.push((info, outcome));
                }
                continue;
            }
            let group_outcomes = run_group(&shared, members, group.parallel).await;
            for (info, outcome) in group_outcomes {
                if stop.is_none() && !outcome.conclusion.is_passing() {
                    stop = Some(format!("`{}` ended `{}`", info.name, outcome.conclusion));
                }
                outcomes.push((info, outcome));
            }
        }

        let conclusion = outcomes
            .iter()
            .map(|(_, o)| o.conclusion)
            .find(|c| !c.is_passing())
            .unwrap_or(Conclusion::Success);
        shared.emit(Event::RunFinished {
            conclusion,
            outcomes: outcomes.clone(),
        });
        let grace = if self.cancel.is_cancelled() {
            shared.settings.reporter_grace
        } else {
            REPORTER_DRAIN
        };
        drop(shared);
        // Reporters finish what they were told; one that hangs does not hold the exit forever.
        let _ = tokio::time::timeout(grace, reporting).await;
        Ok(RunReport {
            conclusion,
            outcomes,
        })
    }
}

struct Shared {
    settings: RunSettings,
    masker: Masker,
    sender: HttpSender,
    mailbox: Option<Arc<dyn Mailbox>>,
    github: Option<Arc<dyn GithubPort>>,
    events: mpsc::UnboundedSender<Event>,
    /// `steps[...]` for templates: the results of finished steps.
    results: Mutex<Map<String, Value>>,
    run_deadline: Option<Instant>,
    run_cancel: CancellationToken,
    journal: Option<Arc<dyn Journal>>,
}

impl Shared {
    /// Sends an event with every message masked.
    fn emit(&self, event: Event) {
        let event = match event {
            Event::StepProgress {
                step,
                message,
                percent,
            } => Event::StepProgress {
                step,
                // Masked first, then cut: no part of a secret is left at the cut.
                message: crate::callback::cut_progress(&self.masker.mask(&message)),
                percent,
            },
            Event::StepFinished { step, mut outcome } => {
                outcome.message = self.masker.mask(&outcome.message);
                Event::StepFinished { step, outcome }
            }
            Event::RunFinished {
                conclusion,
                mut outcomes,
            } => {
                for (_, outcome) in &mut outcomes {
                    outcome.message = self.masker.mask(&outcome.message);
                }
                Event::RunFinished {
                    conclusion,
                    outcomes,
                }
            }
            other => other,
        };
        // The receiver lives until the run ends; a send can only fail after that.
        let _ = self.events.send(event);
    }

    fn progress(&self, step: &StepInfo, message: String, percent: Option<u8>) {
        self.emit(Event::StepProgress {
            step: step.clone(),
            message,
            percent,
        });
    }

    fn finish(&self, step: &StepInfo, outcome: &StepOutcome) {
        self.emit(Event::StepFinished {
            step: step.clone(),
            outcome: outcome.clone(),
        });
    }

    fn steps_snapshot(&self) -> Value {
        Value::Object(
            self.results
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }

    /// The template variables of `call`, without `callback.*` (a slot adds those).
    fn vars(&self, call: &WebhookCall, steps: &Value) -> Value {
        let mut context: Map<String, Value> = self.settings.context.clone().into_iter().collect();
        for (key, value) in &call.context {
            context.insert(key.clone(), value.clone());
        }
        json!({
            "secrets": self.settings.secrets,
            "context": context,
            "armory": self.settings.armory.to_json(),
            "github": self.settings.github,
            "steps": steps,
        })
    }
}

/// Runs one group; in a parallel group the first step that does not pass cancels the others.
async fn run_group(
    shared: &Arc<Shared>,
    members: Vec<(StepInfo, &PlannedStep)>,
    parallel: bool,
) -> Vec<(StepInfo, StepOutcome)> {
    let group_cancel = shared.run_cancel.child_token();
    let first_failure: Mutex<Option<String>> = Mutex::new(None);
    let steps_before = shared.steps_snapshot();
    let futures = members.into_iter().map(|(info, step)| {
        let group_cancel = &group_cancel;
        let first_failure = &first_failure;
        let steps_before = &steps_before;
        async move {
            let why_cancelled = || {
                if shared.run_cancel.is_cancelled() {
                    "cancelled: the run was cancelled".to_owned()
                } else {
                    first_failure
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .clone()
                        .unwrap_or_else(|| "cancelled".to_owned())
                }
            };
            let outcome = run_step(
                shared,
                &info,
                step,
                group_cancel,
                &why_cancelled,
                steps_before,
            )
            .await;
            if parallel && !outcome.conclusion.is_passing() {
                let mut first = first_failure.lock().unwrap_or_else(PoisonError::into_inner);
                if first.is_none() && !group_cancel.is_cancelled() {
                    *first = Some(format!(
                        "cancelled: `{}` ended `{}`",
                        info.name, outcome.conclusion
                    ));
                    group_cancel.cancel();
                }
            }
            (info, outcome)
        }
    });
    futures::future::join_all(futures).await
}

async fn run_step(
    shared: &Arc<Shared>,
    info: &StepInfo,
    step: &PlannedStep,
    cancel: &CancellationToken,
    why_cancelled: &(dyn Fn() -> String + Send + Sync),
    steps_before: &Value,
) -> StepOutcome {
    // What an earlier attempt of this run wrote down for the step, read once.
    let recalled = match &shared.journal {
        Some(journal) => journal.recall(&info.name).await,
        None => Ok(None),
    };
    if let Ok(Some(StepRecord::Finished {
        conclusion,
        message,
        outputs,
        result,
    })) = recalled
    {
        let outcome = finished_before(shared, info, conclusion, message, outputs, result);
        shared.finish(info, &outcome);
        return outcome;
    }
    let outcome = match step {
        PlannedStep::NotHandled { step, reason } => StepOutcome::new(
            Conclusion::Skipped,
            format!("`{step}` is not handled by hookgate: {reason}"),
            None,
            Duration::ZERO,
        ),
        PlannedStep::Pause { duration } => {
            if let Err(err) = &recalled {
                tracing::warn!(step = %info.name, error = %err, "cannot read the step's journal");
            }
            run_pause(shared, info, *duration, cancel, why_cancelled).await
        }
        PlannedStep::Webhook(call) => {
            let recalled = recalled.map_err(StepError::Journal);
            run_webhook(
                shared,
                info,
                call,
                cancel,
                why_cancelled,
                steps_before,
                recalled,
            )
            .await
        }
    };
    // Outcomes leave the engine (events, the report) with secret values masked.
    // (Outputs are masked as they are taken in, by `Outputs::merge`.)
    let outcome = StepOutcome {
        message: shared.masker.mask(&outcome.message),
        ..outcome
    };
    if let Some(journal) = &shared.journal {
        let result = shared
            .results
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&info.name)
            .cloned()
            .unwrap_or(Value::Null);
        let record = StepRecord::Finished {
            conclusion: outcome.conclusion,
            message: outcome.message.clone(),
            outputs: outcome.outputs.clone(),
            result,
        };
        // Not written down, the step runs again after a restart: its request goes with the
        // key it had, so that costs a repeat the service can tell, not a second gate.
        if let Err(err) = journal.record(&info.name, &record).await {
            tracing::warn!(step = %info.name, error = %err, "cannot write down how the step ended");
        }
    }
    shared.finish(info, &outcome);
    outcome
}

/// The outcome of a step that ended in an earlier attempt of this run, as the journal holds
/// it; its result goes back into `steps[...]`.
fn finished_before(
    shared: &Shared,
    info: &StepInfo,
    conclusion: Conclusion,
    message: String,
    outputs: std::collections::BTreeMap<String, String>,
    result: Value,
) -> StepOutcome {
    if !result.is_null() {
        shared
            .results
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(info.name.clone(), result);
    }
    StepOutcome {
        outputs,
        ..StepOutcome::new(conclusion, message, None, Duration::ZERO)
    }
}

async fn run_pause(
    shared: &Arc<Shared>,
    info: &StepInfo,
    duration: Duration,
    cancel: &CancellationToken,
    why_cancelled: &(dyn Fn() -> String + Send + Sync),
) -> StepOutcome {
    let started_at = SystemTime::now();
    let start = Instant::now();
    shared.emit(Event::StepStarted { step: info.clone() });
    let run_deadline = shared
        .run_deadline
        .unwrap_or_else(|| deadline_after(start, FOREVER));
    let shown = humantime::format_duration(duration);
    let (conclusion, message) = tokio::select! {
        () = tokio::time::sleep(duration) => (Conclusion::Success, format!("paused {shown}")),
        () = tokio::time::sleep_until(run_deadline) => (
            Conclusion::TimedOut,
            "the run's time limit passed during the pause".to_owned(),
        ),
        () = cancel.cancelled() => (Conclusion::Cancelled, why_cancelled()),
    };
    StepOutcome::new(conclusion, message, Some(started_at), start.elapsed())
}

/// What a webhook step has done so far, kept outside its future so a cancellation or timeout
/// can still send the cancel request and record what was answered.
#[derive(Default)]
struct StepState {
    vars: Value,
    /// The request may have reached the service.
    sent: bool,
    response: Option<HttpResponse>,
    callback_body: Option<Value>,
    /// `waitFor: poll`: the last status answer's body.
    poll_body: Option<Value>,
    /// The `outputs` its callbacks returned, for `steps['NAME'].outputs`.
    outputs: Outputs,
    /// What its GitHub dispatch started, to be told when the step ends early.
    started: Option<Started>,
}

/// What a step's GitHub dispatch started.
#[derive(Debug, Clone)]
enum Started {
    /// A workflow run whose id GitHub returned: cancelled through the Actions API.
    WorkflowRun { repository: String, run_id: u64 },
    /// A dispatch without a run to follow (`repository_dispatch`): sent again with the
    /// webhook's `cancelEventType`, when it has one.
    Dispatch(Dispatch),
}

async fn run_webhook(
    shared: &Arc<Shared>,
    info: &StepInfo,
    call: &WebhookCall,
    cancel: &CancellationToken,
    why_cancelled: &(dyn Fn() -> String + Send + Sync),
    steps_before: &Value,
    recalled: Result<Option<StepRecord>, StepError>,
) -> StepOutcome {
    let started_at = SystemTime::now();
    let start = Instant::now();
    let vars = shared.vars(call, steps_before);
    let webhook = &call.webhook;
    let name = call.step_name.as_str();

    if let Some(condition) = &call.condition {
        let site = TemplateSite {
            webhook: &webhook.name,
            field: "runWebhook.if",
        };
        let (conclusion, message) = match template::condition(condition, &vars, &site) {
            Ok(true) => (None, String::new()),
            Ok(false) => (
                Some(Conclusion::Skipped),
                format!("skipped: the condition `{condition}` is false"),
            ),
            Err(err) => (Some(Conclusion::Failure), err.to_string()),
        };
        if let Some(conclusion) = conclusion {
            record(shared, name, conclusion, &message, &StepState::default());
            return StepOutcome::new(conclusion, message, None, Duration::ZERO);
        }
    }

    shared.emit(Event::StepStarted { step: info.clone() });
    let step_timeout = call.timeout;
    let step_deadline = deadline_after(start, step_timeout);
    let (deadline, limit) = match shared.run_deadline {
        Some(run) if run < step_deadline => (run, shared.settings.run_timeout_name.clone()),
        _ => (
            step_deadline,
            format!(
                "the webhook's timeout of {}",
                humantime::format_duration(step_timeout)
            ),
        ),
    };
    let state = Mutex::new(StepState {
        vars,
        ..StepState::default()
    });
    let deadline_at = SystemTime::now() + deadline.saturating_duration_since(Instant::now());
    let ended = tokio::select! {
        result = execute(shared, info, call, &state, deadline_at, recalled) => {
            Some(result.unwrap_or_else(|err| (Conclusion::Failure, err.to_string())))
        }
        () = tokio::time::sleep_until(deadline) => None,
        () = cancel.cancelled() => None,
    };
    // Ended by its deadline or a cancellation rather than by its own result: what it started is
    // told. (A service that reports its job cancelled has nothing left to cancel.)
    let ended_early = ended.is_none();
    let (conclusion, mut message) = match ended {
        Some(result) => result,
        None if cancel.is_cancelled() => (Conclusion::Cancelled, why_cancelled()),
        None => (Conclusion::TimedOut, format!("no result within {}", limit)),
    };
    if ended_early {
        let (sent, vars) = {
            let state = state.lock().unwrap_or_else(PoisonError::into_inner);
            // The cancel request may name what this step's own request was answered
            // (`steps['NAME'].body.id`).
            let mut vars = state.vars.clone();
            if let Some(steps) = vars.get_mut("steps").and_then(Value::as_object_mut) {
                steps.insert(name.to_owned(), result_entry(conclusion, &message, &state));
            }
            (state.sent, vars)
        };
        if sent && let Some(note) = send_cancel(shared, webhook, &vars).await {
            message = format!("{message}; {note}");
        }
        let started = lock(&state).started.clone();
        if let Some(started) = started
            && let Some(note) = cancel_started(shared, webhook, &started, &vars).await
        {
            message = format!("{message}; {note}");
        }
    }
    let state = state.into_inner().unwrap_or_else(PoisonError::into_inner);
    record(shared, name, conclusion, &message, &state);
    StepOutcome {
        outputs: state.outputs.values().clone(),
        ..StepOutcome::new(conclusion, message, Some(started_at), start.elapsed())
    }
}

/// Stores a finished step's result for `steps['NAME']` in later templates.
fn record(shared: &Shared, name: &str, conclusion: Conclusion, message: &str, state: &StepState) {
    let entry = result_entry(conclusion, message, state);
    shared
        .results
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(name.to_owned(), entry);
}

/// `steps['NAME']`: `status`, `headers`, `body` (JSON when it is JSON), `message`,
/// `conclusion`, the accepted `callback` body, the last `poll` status answer's body and the
/// callbacks' `outputs`.
fn result_entry(conclusion: Conclusion, message: &str, state: &StepState) -> Value {
    let (status, headers, body) = match &state.response {
        Some(response) => {
            let headers: Map<String, Value> = response
                .headers
                .iter()
                .map(|(n, v)| (n.clone(), Value::String(v.clone())))
                .collect();
            let body = response
                .json()
                .unwrap_or_else(|| Value::String(response.text()));
            (json!(response.status), Value::Object(headers), body)
        }
        None => (Value::Null, Value::Object(Map::new()), Value::Null),
    };
    json!({
        "status": status,
        "headers": headers,
        "body": body,
        "message": message,
        "conclusion": conclusion.as_str(),
        "callback": state.callback_body.clone().unwrap_or(Value::Null),
        "poll": state.poll_body.clone().unwrap_or(Value::Null),
        "outputs": state.outputs.values(),
    })
}

fn lock(state: &Mutex<StepState>) -> std::sync::MutexGuard<'_, StepState> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Renders headers, the `field` prefix naming them in errors.
fn render_headers(
    headers: &[hookgate_config::model::Header],
    vars: &Value,
    webhook: &str,
    prefix: &str,
) -> Result<Vec<(String, String)>, String> {
    headers
        .iter()
        .map(|header| {
            let field = format!("{prefix}.{}", header.key);
            template::render(
                &header.value,
                vars,
                &TemplateSite {
                    webhook,
                    field: &field,
                },
            )
            .map(|value| (header.key.clone(), value))
            .map_err(|e| e.to_string())
        })
        .collect()
}

/// Why a webhook step failed before its wait could decide.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// A template, or a rendered value GitHub would refuse.
    #[error("{0}")]
    Render(String),
    /// No callback slot could be had from the relay.
    #[error("{0}")]
    Slot(String),
    /// The webhook's request failed after its retries.
    #[error("{failure}{}", if *.fail_fast { " (a failFastStatusCodes status: not retried)" } else { "" })]
    Request {
        /// What failed.
        failure: RequestFailure,
        /// Whether a `failFastStatusCodes` status ended it.
        fail_fast: bool,
    },
    /// A dispatch kind, and no GitHub token to send it with.
    #[error("no GitHub token is available")]
    NoGithub,
    /// GitHub refused or did not answer a dispatch.
    #[error(transparent)]
    Github(#[from] crate::github::GithubError),
    /// `waitFor: poll` on a GitHub dispatch (validation refuses it).
    #[error("a GitHub dispatch answers with no status URL to poll")]
    NothingToPoll,
    /// `waitFor: workflowRun` on something that starts no workflow (validation refuses it).
    #[error("`waitFor: workflowRun` needs a `workflowDispatch` webhook")]
    NoWorkflow,
    /// The run's journal could not be read or written.
    #[error("the run's journal: {0}")]
    Journal(String),
    /// A dispatch may have been sent before a restart; it is not sent again.
    #[error(
        "the dispatch may have reached GitHub before the restart, and a dispatch has no idempotency key: not sent again (look for its run in the target repository)"
    )]
    MaybeDispatched,
}

/// Sends the request, then waits as the webhook says: one piece per wait mode.
async fn execute(
    shared: &Arc<Shared>,
    info: &StepInfo,
    call: &WebhookCall,
    state: &Mutex<StepState>,
    deadline: SystemTime,
    recalled: Result<Option<StepRecord>, StepError>,
) -> Result<(Conclusion, String), StepError> {
    // `networkMode: remoteNetworkAgent` is called directly too: the machine this runs on plays
    // the agent's part (validation warns about it).
    let webhook = &call.webhook;
    let progress = |message: String| shared.progress(info, message, None);

    // A callback slot first: its URL and token go into the request.
    let callback = match call.wait {
        WaitFor::Callback => Some(
            open_callback(shared, info, webhook, state, deadline)
                .await
                .map_err(StepError::Slot)?,
        ),
        _ => None,
    };

    let vars = lock(state).vars.clone();
    let recalled = recalled?;
    let idempotency_key = match &recalled {
        Some(StepRecord::Sending { idempotency_key })
        | Some(StepRecord::Answered {
            idempotency_key, ..
        }) => idempotency_key.clone(),
        _ => uuid::Uuid::new_v4().to_string(),
    };
    let outgoing =
        build_request(shared, webhook, &vars, &idempotency_key).map_err(StepError::Render)?;
    lock(state).sent = true;
    // A dispatch carries no idempotency key: one that may have reached GitHub before a restart
    // is not sent again, since GitHub would start a second run.
    if matches!(recalled, Some(StepRecord::Sending { .. }))
        && matches!(outgoing, Outgoing::Dispatch(_))
    {
        return Err(StepError::MaybeDispatched);
    }
    let answered_before = match recalled {
        Some(StepRecord::Answered { response, .. }) => Some(HttpResponse::from(response)),
        _ => None,
    };
    if let (Some(journal), None) = (&shared.journal, &answered_before) {
        let record = StepRecord::Sending {
            idempotency_key: idempotency_key.clone(),
        };
        journal
            .record(&info.name, &record)
            .await
            .map_err(StepError::Journal)?;
    }
    let (response, sent) = match (outgoing, answered_before) {
        (Outgoing::Dispatch(dispatch), Some(response)) => {
            progress(format!(
                "resumed: the dispatch was answered HTTP {} before the restart; not sent again",
                response.status
            ));
            (response, Sent::Dispatch(dispatch))
        }
        (Outgoing::Webhook(request), Some(response)) => {
            progress(format!(
                "resumed: the request was answered HTTP {} before the restart; not sent again",
                response.status
            ));
            (response, Sent::Webhook(request))
        }
        (Outgoing::Dispatch(dispatch), None) => {
            let response = send_dispatch(shared, &dispatch, &progress).await?;
            // What to tell should the step end early: the run it started, or the dispatch.
            lock(state).started = Some(
                match dispatch::dispatched_run_id(response.json().as_ref()) {
                    Some(run_id) => Started::WorkflowRun {
                        repository: dispatch.repository.clone(),
                        run_id,
                    },
                    None => Started::Dispatch(dispatch.clone()),
                },
            );
            (response, Sent::Dispatch(dispatch))
        }
        (Outgoing::Webhook(request), None) => {
            let response = send_webhook(shared, webhook, &request, state, &progress).await?;
            (response, Sent::Webhook(request))
        }
    };
    if let Some(journal) = &shared.journal {
        let record = StepRecord::Answered {
            idempotency_key,
            response: RecordedResponse::from(&response),
        };
        journal
            .record(&info.name, &record)
            .await
            .map_err(StepError::Journal)?;
    }
    lock(state).response = Some(response.clone());
    let answered = format!("HTTP {}", response.status);

    Ok(match (call.wait, sent) {
        (WaitFor::None, _) => (Conclusion::Success, answered),
        (WaitFor::Poll, Sent::Webhook(request)) => {
            let progress = |message: String, percent: Option<u8>| {
                shared.progress(info, message, percent);
            };
            let result =
                poll::follow(&shared.sender, webhook, &request, &response, &progress).await;
            if let (Some(config), Some(body)) = (&webhook.poll, &result.last_body) {
                let (given, notes) = poll::outputs_of(config, body);
                let mut state = lock(state);
                for note in notes
                    .into_iter()
                    .chain(state.outputs.merge(given, &shared.masker))
                {
                    progress(note, None);
                }
            }
            lock(state).poll_body = result.last_body;
            (result.conclusion, result.message)
        }
        (WaitFor::Poll, Sent::Dispatch(_)) => return Err(StepError::NothingToPoll),
        (WaitFor::Callback, _) => {
            let (Some(mailbox), Some((slot, check))) = (shared.mailbox.as_deref(), &callback)
            else {
                return Err(StepError::Slot("no callback slot is open".to_owned()));
            };
            progress(format!("{answered}; waiting for the callback"));
            let keep_outputs = |given| {
                for note in lock(state).outputs.merge(given, &shared.masker) {
                    progress(note);
                }
            };
            let result = callback::await_verdict(
                mailbox,
                slot,
                check,
                shared.settings.relay_backoff,
                &progress,
                &keep_outputs,
            )
            .await;
            lock(state).callback_body = result.body;
            (result.conclusion, result.message)
        }
        (WaitFor::WorkflowRun, Sent::Dispatch(dispatch)) => {
            let github = shared.github.as_deref().ok_or(StepError::NoGithub)?;
            let intervals = PollIntervals {
                fixed: webhook.poll.as_ref().and_then(|p| p.interval).map(|d| d.0),
            };
            let run_id = match dispatch::dispatched_run_id(response.json().as_ref()) {
                Some(run_id) => run_id,
                None => {
                    let found = dispatch::find_dispatched_run(github, &dispatch, &progress).await;
                    let run_id = found.map_err(StepError::Render)?;
                    lock(state).started = Some(Started::WorkflowRun {
                        repository: dispatch.repository.clone(),
                        run_id,
                    });
                    run_id
                }
            };
            dispatch::await_workflow_run(github, &dispatch.repository, run_id, intervals, &progress)
                .await
        }
        (WaitFor::WorkflowRun, Sent::Webhook(_)) => return Err(StepError::NoWorkflow),
    })
}

/// What was sent: the webhook's own request, or a dispatch to this repository.
enum Sent {
    Webhook(HttpRequest),
    Dispatch(Dispatch),
}

/// Sends a webhook's own request with its retries; a refusal's answer is kept for `steps[...]`.
async fn send_webhook(
    shared: &Shared,
    webhook: &Webhook,
    request: &HttpRequest,
    state: &Mutex<StepState>,
    progress: &(dyn Fn(String) + Send + Sync),
) -> Result<HttpResponse, StepError> {
    let policy = RetryPolicy {
        retry_count: webhook.retry_count.unwrap_or(0),
        retry_status_codes: webhook.call_retry_codes().to_vec(),
        fail_fast_status_codes: webhook.fail_fast_codes(),
        backoff: shared.settings.retry_backoff,
        resend_after_sent: webhook.idempotent.unwrap_or(false)
            || crate::request::idempotent_method(&request.method),
    };
    shared
        .sender
        .send(request, &policy, progress)
        .await
        .map_err(|failure| {
            let fail_fast = matches!(
                failure,
                RequestFailure::Status {
                    fail_fast: true,
                    ..
                }
            );
            if let RequestFailure::Status { response, .. } = &failure {
                lock(state).response = Some((**response).clone());
            }
            StepError::Request { failure, fail_fast }
        })
}

/// Opens the callback slot of a `waitFor: callback` step and puts its URL and token into the
/// step's template variables (`callback.*`, `armory.callbackUri`).
async fn open_callback(
    shared: &Shared,
    info: &StepInfo,
    webhook: &Webhook,
    state: &Mutex<StepState>,
    deadline: SystemTime,
) -> Result<(SlotCreated, CallbackCheck), String> {
    let Some(mailbox) = shared.mailbox.as_deref() else {
        return Err("no relay is configured".to_owned());
    };
    let (auth, hmac) = match &webhook.callback {
        Some(config) if config.auth == CallbackAuthMode::Hmac => {
            let Some(secret_template) = &config.secret else {
                return Err(format!(
                    "webhook `{}` has `callback.auth: hmac` but no `callback.secret`",
                    webhook.name
                ));
            };
            let vars = lock(state).vars.clone();
            let site = TemplateSite {
                webhook: &webhook.name,
                field: "callback.secret",
            };
            let secret =
                template::render(secret_template, &vars, &site).map_err(|e| e.to_string())?;
            shared.masker.add(&secret);
            let (slot_auth, scheme) = match config.scheme {
                HmacScheme::Standard => {
                    (CallbackAuth::HmacStandard, hookgate_auth::Scheme::Standard)
                }
                HmacScheme::Github => (CallbackAuth::HmacGithub, hookgate_auth::Scheme::Github),
            };
            let allow_unbound = config.allow_unbound.unwrap_or(false);
            (slot_auth, Some((scheme, secret, allow_unbound)))
        }
        _ => (CallbackAuth::Bearer, None),
    };
    let request = CreateSlot {
        auth,
        deadline: Deadline::At(deadline),
        label: info.name.clone(),
    };
    let progress = |message: String| shared.progress(info, message, None);
    let opened = open_slot(shared, mailbox, request, &progress).await?;
    if let Some(token) = &opened.token {
        shared.masker.add(token);
    }
    let check = match (hmac, &opened.token) {
        (Some((scheme, secret, allow_unbound)), _) => {
            CallbackCheck::hmac(scheme, secret, opened.id.clone(), allow_unbound)
        }
        (None, Some(_)) => CallbackCheck::Relay,
        (None, None) => return Err("the relay opened a bearer slot without a token".to_owned()),
    };
    let mut state = lock(state);
    let token = opened.token.clone().unwrap_or_default();
    if let Some(vars) = state.vars.as_object_mut() {
        vars.insert(
            "callback".to_owned(),
            json!({"uri": opened.callback_url, "token": token, "slot": opened.id.as_str()}),
        );
        if let Some(armory) = vars.get_mut("armory").and_then(Value::as_object_mut) {
            armory.insert("callbackUri".to_owned(), json!(opened.callback_url));
        }
    }
    Ok((opened, check))
}

/// What a step sends: a GitHub dispatch (through the GitHub port), or a request to the
/// webhook's own URL.
enum Outgoing {
    Webhook(HttpRequest),
    Dispatch(Dispatch),
}

/// The step's request: a GitHub dispatch, or the webhook's own URL with an `Idempotency-Key`
/// (so it may be retried).
fn build_request(
    shared: &Shared,
    webhook: &Webhook,
    vars: &Value,
    idempotency_key: &str,
) -> Result<Outgoing, String> {
    let dispatch = match (&webhook.repository_dispatch, &webhook.workflow_dispatch) {
        (Some(spec), _) => dispatch::repository_dispatch(spec, vars, &webhook.name)?,
        (None, Some(spec)) => {
            let repository = shared.github.as_deref().and_then(GithubPort::repository);
            dispatch::workflow_dispatch(repository, spec, vars, &webhook.name)?
        }
        (None, None) => {
            let mut request = render_request(webhook, vars)?;
            if !request
                .headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("idempotency-key"))
            {
                request
                    .headers
                    .push(("Idempotency-Key".to_owned(), idempotency_key.to_owned()));
            }
            return Ok(Outgoing::Webhook(request));
        }
    };
    Ok(Outgoing::Dispatch(dispatch))
}

/// Sends a dispatch through the GitHub port; GitHub's answer stands as the step's response.
async fn send_dispatch(
    shared: &Shared,
    dispatch: &Dispatch,
    progress: &(dyn Fn(String) + Send + Sync),
) -> Result<HttpResponse, StepError> {
    let github = shared.github.as_deref().ok_or(StepError::NoGithub)?;
    let answer = github.dispatch(dispatch, progress).await?;
    let body = match answer.body {
        Value::Null => Vec::new(),
        body => body.to_string().into_bytes(),
    };
    Ok(HttpResponse {
        status: answer.status,
        headers: Vec::new(),
        body,
        truncated: false,
        url: dispatch.path.clone(),
    })
}

/// Opens a slot, retrying while the relay is unavailable (the step's deadline bounds it).
async fn open_slot(
    shared: &Shared,
    mailbox: &dyn Mailbox,
    request: CreateSlot,
    progress: &(dyn Fn(String) + Send + Sync),
) -> Result<SlotCreated, String> {
    let mut failures = 0u32;
    loop {
        match mailbox.open(request.clone()).await {
            Ok(slot) => return Ok(slot),
            Err(MailboxError::Permanent(reason)) => {
                return Err(format!(
                    "the relay refused to open a callback slot: {reason}"
                ));
            }
            Err(MailboxError::Transient(reason)) => {
                let delay = shared.settings.relay_backoff.delay(failures);
                failures = failures.saturating_add(1);
                progress(format!(
                    "cannot open a callback slot yet ({reason}); retrying"
                ));
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// The webhook's request, rendered.
fn render_request(webhook: &Webhook, vars: &Value) -> Result<HttpRequest, String> {
    let Some(uri_template) = &webhook.uri_template else {
        return Err(format!(
            "webhook `{}` has no `uriTemplate` (nor repositoryDispatch/workflowDispatch)",
            webhook.name
        ));
    };
    let site = |field| TemplateSite {
        webhook: &webhook.name,
        field,
    };
    let url =
        template::render(uri_template, vars, &site("uriTemplate")).map_err(|e| e.to_string())?;
    let headers = render_headers(&webhook.headers, vars, &webhook.name, "headers")?;
    let body = match &webhook.body_template {
        Some(body) => Some(
            template::render(&body.inline, vars, &site("bodyTemplate.inline"))
                .map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    let method = webhook
        .method
        .map_or(reqwest::Method::POST, |m| method_of(m.as_str()));
    let mut headers = headers;
    // A JSON body without a declared type is sent as JSON, which is what services expect.
    let declares_type = headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("content-type"));
    if !declares_type
        && body
            .as_deref()
            .is_some_and(|b| serde_json::from_str::<Value>(b).is_ok())
    {
        headers.push(("Content-Type".to_owned(), "application/json".to_owned()));
    }
    Ok(HttpRequest {
        method,
        url: url.trim().to_owned(),
        headers,
        body,
    })
}

fn method_of(name: &str) -> reqwest::Method {
    reqwest::Method::from_bytes(name.as_bytes()).unwrap_or(reqwest::Method::POST)
}

/// Sends the webhook's `cancel:` request once, briefly. Returns a note for the step's message.
/// Tells what a dispatch started that the step ended early: cancels the workflow run through the
/// Actions API, or sends the `repository_dispatch` again with `cancelEventType` and the same
/// client payload. Each within the cancel timeout; `None` when there is nothing to tell.
async fn cancel_started(
    shared: &Shared,
    webhook: &Webhook,
    started: &Started,
    vars: &Value,
) -> Option<String> {
    let github = shared.github.as_deref()?;
    let limit = shared.settings.cancel_timeout;
    let shown = humantime::format_duration(limit);
    match started {
        Started::WorkflowRun { repository, run_id } => Some(
            match tokio::time::timeout(limit, github.cancel_run(repository, *run_id)).await {
                Ok(Ok(())) => format!("workflow run {run_id} of {repository} cancelled"),
                Ok(Err(err)) => {
                    format!("cancelling workflow run {run_id} of {repository} failed: {err}")
                }
                Err(_) => {
                    format!("cancelling workflow run {run_id} of {repository} took over {shown}")
                }
            },
        ),
        Started::Dispatch(sent) => {
            let event_type = webhook
                .repository_dispatch
                .as_ref()?
                .cancel_event_type
                .as_deref()?;
            let event_type = match template::render(
                event_type,
                vars,
                &TemplateSite {
                    webhook: &webhook.name,
                    field: "repositoryDispatch.cancelEventType",
                },
            ) {
                Ok(rendered) => rendered,
                Err(err) => return Some(format!("cancel dispatch not sent: {err}")),
            };
            let mut cancel = sent.clone();
            cancel.body["event_type"] = Value::String(event_type.clone());
            let quiet = |_: String| {};
            Some(
                match tokio::time::timeout(limit, github.dispatch(&cancel, &quiet)).await {
                    Ok(Ok(_)) => format!("`{event_type}` dispatched to {}", sent.repository),
                    Ok(Err(err)) => format!("the `{event_type}` dispatch failed: {err}"),
                    Err(_) => format!("the `{event_type}` dispatch took over {shown}"),
                },
            )
        }
    }
}

async fn send_cancel(shared: &Shared, webhook: &Webhook, vars: &Value) -> Option<String> {
    let cancel = webhook.cancel.as_ref()?;
    let site = |field| TemplateSite {
        webhook: &webhook.name,
        field,
    };
    let rendered = (|| -> Result<HttpRequest, String> {
        let url = template::render(&cancel.uri_template, vars, &site("cancel.uriTemplate"))
            .map_err(|e| e.to_string())?;
        let headers = render_headers(&cancel.headers, vars, &webhook.name, "cancel.headers")?;
        let body = match &cancel.body_template {
            Some(body) => Some(
                template::render(&body.inline, vars, &site("cancel.bodyTemplate.inline"))
                    .map_err(|e| e.to_string())?,
            ),
            None => None,
        };
        Ok(HttpRequest {
            method: cancel
                .method
                .map_or(reqwest::Method::POST, |m| method_of(m.as_str())),
            url: url.trim().to_owned(),
            headers,
            body,
        })
    })();
    let request = match rendered {
        Ok(request) => request,
        Err(message) => return Some(format!("cancel request not sent: {message}")),
    };
    let sent = tokio::time::timeout(
        shared.settings.cancel_timeout,
        shared.sender.send_once(&request),
    )
    .await;
    Some(match sent {
        Ok(Ok(response)) if response.is_success() => {
            format!("cancel request answered HTTP {}", response.status)
        }
        Ok(Ok(response)) => format!(
            "cancel request answered HTTP {}: {}",
            response.status,
            excerpt(&response.text(), 100)
        ),
        Ok(Err(err)) => format!("cancel request failed: {err}"),
        Err(_) => format!(
            "cancel request had no answer within {}",
            humantime::format_duration(shared.settings.cancel_timeout)
        ),
    })
}
