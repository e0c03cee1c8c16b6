//! Check runs: one per step on the gated commit, named so branch protection can require it,
//! and optionally one for the whole run.
//!
//! Each check is created `queued` when the run starts, moves to `in_progress` when its step
//! starts (with the step's progress in the summary, at most one update per check every few
//! seconds), and is `completed` with the step's conclusion when it ends. Checks of steps that
//! never started are completed from the run's final outcomes.
//!
//! A create whose answer was lost (a 5xx, a timeout) may have made the check, and a second POST
//! would leave a stale `queued` twin beside it. So it is not sent again at once: before the next
//! write the commit's checks of that name are listed, and the one with this run's `external_id`
//! is adopted; only when there is none is it created again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::future::BoxFuture;
use hookgate_engine::{Conclusion, Event, Reporter, StepInfo, StepOutcome};
use reqwest::Method;
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;

use crate::client::{ApiError, GithubClient, PermissionLatch, Resend};
use crate::context::Repository;
use crate::text::{
    CHECK_OUTPUT_LIMIT, cut_to_bytes, emoji, query_value, short_duration, table_cell, wait_mode,
};

/// At most this many progress lines are kept per check.
const PROGRESS_LINES: usize = 50;

/// What the check-run reporter needs to know besides the events.
#[derive(Debug, Clone)]
pub struct CheckRunSettings {
    /// The repository.
    pub repository: Repository,
    /// The commit the checks are on.
    pub head_sha: String,
    /// The check's name template (`{target}`, `{phase}`, `{step}`).
    pub name_template: String,
    /// The aggregate check's name template, when one is wanted.
    pub aggregate_name_template: Option<String>,
    /// The workflow run's page.
    pub details_url: Option<String>,
    /// Identifies this run in `external_id` (`run_id.attempt`).
    pub run_key: String,
    /// The shortest time between two progress updates of one check.
    pub progress_interval: Duration,
}

#[derive(Debug)]
struct CheckRun {
    id: Option<u64>,
    name: String,
    external_id: String,
    progress: Vec<String>,
    /// The last percent complete heard.
    percent: Option<u8>,
    last_update: Option<Instant>,
    /// An update of the progress is scheduled for when the interval is over.
    update_scheduled: bool,
    completed: bool,
    /// A create got no answer that says whether GitHub made the check (a 5xx, a timeout).
    maybe_created: bool,
}

impl CheckRun {
    fn new(name: String, external_id: String) -> Self {
        CheckRun {
            id: None,
            name,
            external_id,
            progress: Vec::new(),
            percent: None,
            last_update: None,
            update_scheduled: false,
            completed: false,
            maybe_created: false,
        }
    }
}

#[derive(Debug, Default)]
struct Checks {
    target: String,
    phase: String,
    steps: HashMap<String, CheckRun>,
    aggregate: Option<CheckRun>,
}

/// Reports each step as a check run.
pub struct CheckRunReporter {
    inner: Arc<Reporting>,
}

/// The reporter's state, shared with the updates it schedules.
struct Reporting {
    client: GithubClient,
    settings: CheckRunSettings,
    checks: Mutex<Checks>,
    latch: PermissionLatch,
}

impl CheckRunReporter {
    /// A reporter that creates its checks when the run starts.
    pub fn new(client: GithubClient, settings: CheckRunSettings) -> Self {
        CheckRunReporter {
            inner: Arc::new(Reporting {
                client,
                settings,
                checks: Mutex::new(Checks::default()),
                latch: PermissionLatch::default(),
            }),
        }
    }
}

impl Reporting {
    fn name(template: &str, target: &str, phase: &str, step: &str) -> String {
        template
            .replace("{target}", target)
            .replace("{phase}", phase)
            .replace("{step}", step)
    }

    /// Creates the check when it has no id yet, else updates it.
    async fn send(&self, check: &mut CheckRun, mut body: Map<String, Value>) {
        if self.latch.refused() {
            return;
        }
        let repo = &self.settings.repository;
        if check.id.is_none() && check.maybe_created {
            match self.find_created(check).await {
                Ok(found) => {
                    check.id = found;
                    check.maybe_created = false;
                }
                Err(error) => {
                    self.latch.warn(
                        &format!("check run `{}`", check.name),
                        &error,
                        "checks: write",
                    );
                    return;
                }
            }
        }
        if let Some(details_url) = &self.settings.details_url {
            body.insert("details_url".into(), json!(details_url));
        }
        let result = match check.id {
            Some(id) => {
                let path = format!("/repos/{}/{}/check-runs/{id}", repo.owner, repo.name);
                self.client
                    .send(
                        Method::PATCH,
                        &path,
                        Some(&Value::Object(body)),
                        Resend::Idempotent,
                    )
                    .await
            }
            None => {
                body.insert("name".into(), json!(check.name));
                body.insert("head_sha".into(), json!(self.settings.head_sha));
                body.insert("external_id".into(), json!(check.external_id));
                let path = format!("/repos/{}/{}/check-runs", repo.owner, repo.name);
                // Not resent blindly: a POST whose answer was lost may have made the check.
                // The next event looks for it by `external_id` first (`find_created`).
                let created = self
                    .client
                    .send(
                        Method::POST,
                        &path,
                        Some(&Value::Object(body)),
                        Resend::OnlyIfUnsent,
                    )
                    .await;
                match created {
                    Ok(answer) => match answer.get("id").and_then(Value::as_u64) {
                        Some(id) => {
                            check.id = Some(id);
                            Ok(answer)
                        }
                        None => Err(ApiError::Unexpected {
                            method: Method::POST,
                            path,
                            detail: "no check run `id`".to_owned(),
                        }),
                    },
                    Err(e) => {
                        check.maybe_created = matches!(&e, ApiError::Transport { .. })
                            || e.status().is_some_and(|s| s.is_server_error());
                        Err(e)
                    }
                }
            }
        };
        check.last_update = Some(Instant::now());
        if let Err(error) = result {
            self.latch.warn(
                &format!("check run `{}`", check.name),
                &error,
                "checks: write",
            );
        }
    }

    /// The id of this run's check if an earlier create made it after all.
    async fn find_created(&self, check: &CheckRun) -> Result<Option<u64>, ApiError> {
        let repo = &self.settings.repository;
        let path = format!(
            "/repos/{}/{}/commits/{}/check-runs?check_name={}&filter=all",
            repo.owner,
            repo.name,
            self.settings.head_sha,
            query_value(&check.name)
        );
        let answer = self
            .client
            .send(Method::GET, &path, None, Resend::Idempotent)
            .await?;
        Ok(answer
            .get("check_runs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|run| run.get("external_id").and_then(Value::as_str) == Some(&check.external_id))
            .and_then(|run| run.get("id").and_then(Value::as_u64)))
    }

    async fn run_started(&self, target: &str, phase: &str, steps: &[StepInfo]) {
        let mut checks = self.checks.lock().await;
        checks.target = target.to_owned();
        checks.phase = phase.to_owned();
        let total = steps.len();
        for step in steps {
            let name = Self::name(&self.settings.name_template, target, phase, &step.name);
            let external_id = format!("{}.{}", self.settings.run_key, step.index);
            let mut check = CheckRun::new(name, external_id);
            let body = output_body(
                "queued",
                "Waiting to start",
                &format!(
                    "Gate {} of {total} of target `{target}` ({phase}); waits by `{}`.",
                    step.index + 1,
                    wait_mode(step)
                ),
                None,
            );
            self.send(&mut check, body).await;
            checks.steps.insert(step.name.clone(), check);
        }
        if let Some(template) = &self.settings.aggregate_name_template {
            let name = Self::name(template, target, phase, "");
            let mut check = CheckRun::new(name, format!("{}.all", self.settings.run_key));
            let mut body = output_body(
                "in_progress",
                "Running",
                &format!("{total} gates of target `{target}` ({phase})."),
                None,
            );
            body.insert("started_at".into(), json!(timestamp(SystemTime::now())));
            self.send(&mut check, body).await;
            checks.aggregate = Some(check);
        }
    }

    async fn step_started(&self, step: &StepInfo) {
        let mut checks = self.checks.lock().await;
        let Some(check) = checks.steps.get_mut(&step.name) else {
            return;
        };
        let mut body = output_body(
            "in_progress",
            "Running",
            &format!("Waiting for the result ({}).", wait_mode(step)),
            None,
        );
        body.insert("started_at".into(), json!(timestamp(SystemTime::now())));
        self.send(check, body).await;
    }

    /// Keeps the line and updates the check, at most once per `progress_interval`: a line that
    /// comes sooner is sent when the interval is over (the newest lines then), so the check
    /// always ends up showing the latest progress.
    async fn step_progress(self: &Arc<Self>, step: &StepInfo, message: &str, percent: Option<u8>) {
        let mut checks = self.checks.lock().await;
        let Some(check) = checks.steps.get_mut(&step.name) else {
            return;
        };
        let line = match percent {
            Some(p) => format!("- {p}% · {message}"),
            None => format!("- {message}"),
        };
        check.progress.push(line);
        if check.progress.len() > PROGRESS_LINES {
            check.progress.remove(0);
        }
        check.percent = percent.or(check.percent);
        if check.completed {
            return;
        }
        let wait = check.last_update.map_or(Duration::ZERO, |at| {
            self.settings.progress_interval.saturating_sub(at.elapsed())
        });
        if wait.is_zero() {
            self.send_progress(check).await;
        } else if !check.update_scheduled {
            check.update_scheduled = true;
            let reporting = Arc::clone(self);
            let name = step.name.clone();
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                let mut checks = reporting.checks.lock().await;
                if let Some(check) = checks.steps.get_mut(&name) {
                    check.update_scheduled = false;
                    if !check.completed {
                        reporting.send_progress(check).await;
                    }
                }
            });
        }
    }

    /// Sends the check's progress lines.
    async fn send_progress(&self, check: &mut CheckRun) {
        let title = match check.percent {
            Some(p) => format!("Running: {p}%"),
            None => "Running".to_owned(),
        };
        let summary = format!("Progress so far:\n\n{}", check.progress.join("\n"));
        let body = output_body("in_progress", &title, &summary, None);
        self.send(check, body).await;
    }

    async fn step_finished(&self, step: &StepInfo, outcome: &StepOutcome) {
        let mut checks = self.checks.lock().await;
        let Some(check) = checks.steps.get_mut(&step.name) else {
            return;
        };
        self.complete(check, step, outcome).await;
    }

    async fn complete(&self, check: &mut CheckRun, step: &StepInfo, outcome: &StepOutcome) {
        if check.completed {
            return;
        }
        check.completed = true;
        let title = format!(
            "{} {} in {}",
            emoji(outcome.conclusion),
            verdict(outcome.conclusion),
            short_duration(outcome.duration)
        );
        let summary = if outcome.message.trim().is_empty() {
            format!("The gate ended with `{}`.", outcome.conclusion)
        } else {
            outcome.message.clone()
        };
        let mut text = format!(
            "Webhook `{}`, waits by `{}`, ended `{}` after {}.",
            step.name,
            wait_mode(step),
            outcome.conclusion,
            short_duration(outcome.duration)
        );
        if !check.progress.is_empty() {
            text.push_str("\n\n### Progress\n\n");
            text.push_str(&check.progress.join("\n"));
        }
        let mut body = output_body("completed", &title, &summary, Some(&text));
        body.insert("conclusion".into(), json!(outcome.conclusion.as_str()));
        body.insert("completed_at".into(), json!(timestamp(SystemTime::now())));
        self.send(check, body).await;
    }

    async fn run_finished(&self, conclusion: Conclusion, outcomes: &[(StepInfo, StepOutcome)]) {
        let mut checks = self.checks.lock().await;
        for (step, outcome) in outcomes {
            if let Some(check) = checks.steps.get_mut(&step.name) {
                self.complete(check, step, outcome).await;
            }
        }
        let target = checks.target.clone();
        let phase = checks.phase.clone();
        let Some(check) = checks.aggregate.as_mut() else {
            return;
        };
        let mut summary =
            String::from("| Webhook | Result | Duration | Message |\n|---|---|---|---|\n");
        for (step, outcome) in outcomes {
            summary.push_str(&format!(
                "| {} | {} {} | {} | {} |\n",
                table_cell(&step.name, 100),
                emoji(outcome.conclusion),
                outcome.conclusion,
                short_duration(outcome.duration),
                table_cell(&outcome.message, 300)
            ));
        }
        let title = format!(
            "{} {}: {} ({phase})",
            emoji(conclusion),
            target,
            verdict(conclusion)
        );
        let mut body = output_body("completed", &title, &summary, None);
        body.insert("conclusion".into(), json!(conclusion.as_str()));
        body.insert("completed_at".into(), json!(timestamp(SystemTime::now())));
        check.completed = true;
        self.send(check, body).await;
    }
}

impl Reporter for CheckRunReporter {
    fn report(&self, event: &Event) -> BoxFuture<'_, ()> {
        let event = event.clone();
        let this = &self.inner;
        Box::pin(async move {
            match &event {
                Event::RunStarted {
                    target,
                    phase,
                    steps,
                } => this.run_started(target, phase, steps).await,
                Event::StepStarted { step } => this.step_started(step).await,
                Event::StepProgress {
                    step,
                    message,
                    percent,
                } => this.step_progress(step, message, *percent).await,
                Event::StepFinished { step, outcome } => this.step_finished(step, outcome).await,
                Event::RunFinished {
                    conclusion,
                    outcomes,
                } => this.run_finished(*conclusion, outcomes).await,
            }
        })
    }
}

/// A check-run body with `status` and `output`, each output field within GitHub's limit.
fn output_body(status: &str, title: &str, summary: &str, text: Option<&str>) -> Map<String, Value> {
    let mut output = Map::new();
    output.insert(
        "title".into(),
        json!(cut_to_bytes(title, CHECK_OUTPUT_LIMIT)),
    );
    output.insert(
        "summary".into(),
        json!(cut_to_bytes(summary, CHECK_OUTPUT_LIMIT)),
    );
    if let Some(text) = text {
        output.insert("text".into(), json!(cut_to_bytes(text, CHECK_OUTPUT_LIMIT)));
    }
    let mut body = Map::new();
    body.insert("status".into(), json!(status));
    body.insert("output".into(), Value::Object(output));
    body
}

/// A word for the title.
pub(crate) fn verdict(conclusion: Conclusion) -> &'static str {
    match conclusion {
        Conclusion::Success => "Passed",
        Conclusion::Failure => "Failed",
        Conclusion::Cancelled => "Cancelled",
        Conclusion::TimedOut => "Timed out",
        Conclusion::Skipped => "Skipped",
    }
}

/// ISO 8601 in UTC, as GitHub wants it: `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) fn timestamp(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}
