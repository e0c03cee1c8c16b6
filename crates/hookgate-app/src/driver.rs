//! Drives the gates: takes the open gates whose lease has expired (new ones, and those whose
//! replica stopped), keeps the leases it holds, and runs each gate to its answer: read the
//! deployment file through the App, check the secrets it names against the server's grants,
//! run the target's before-deployment gates with the engine, then approve or reject through
//! GitHub's API for protection rules. The answer is written down before it is sent and the
//! gate closed after, so a gate is answered once even across a restart.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::FutureExt as _;
use futures::future::BoxFuture;
use hookgate_config::{Phase, load_str, plan};
use hookgate_engine::{Conclusion, Event, Masker, Reporter, RunReport, RunSettings, Runner};
use indexmap::IndexMap;
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::AppState;
use crate::durable::{GateJournal, GateMailbox, persist};
use crate::gates::Gate;
use crate::github::RepositoryApi;
use hookgate_github::client::ApiError;

/// GitHub takes up to 10 status reports per deployment (its guide to custom deployment
/// protection rules); the App sends at most this many per gate, and at most one per
/// [`AppState::report_interval`] but for a step's start, besides the answer itself.
pub const MAX_STATUS_REPORTS: i64 = 10;

/// The most gates one replica drives at once; more wait for a replica with room.
pub const MAX_HELD: usize = 2048;

/// How long answered gates and their records are kept.
const ANSWERED_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// A gate this replica drives.
struct Held {
    task: JoinHandle<()>,
    /// When its lease ends, as last written by this replica (wall-clock time, as the store
    /// compares it: a replica paused past it stops driving the gate).
    lease_until: SystemTime,
}

/// Takes and drives gates until the relay stops; then stops driving and gives the leases up.
pub async fn run(app: Arc<AppState>) {
    let stopping = app.slots.stopping();
    let mut held: HashMap<String, Held> = HashMap::new();
    let mut cleaned: Option<Instant> = None;
    loop {
        held.retain(|_, gate| !gate.task.is_finished());
        renew(&app, &mut held).await;
        claim(&app, &mut held).await;
        if let Ok(open) = app.store.open_count().await {
            app.metrics.set_open(open);
        }
        if cleaned.is_none_or(|at| at.elapsed() > Duration::from_secs(3600)) {
            cleaned = Some(Instant::now());
            let cutoff = SystemTime::now()
                .checked_sub(ANSWERED_RETENTION)
                .unwrap_or(SystemTime::UNIX_EPOCH);
            match app.store.remove_answered_before(cutoff).await {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "removed answered gates"),
                Err(err) => tracing::warn!(error = %err, "cannot remove answered gates"),
            }
        }
        tokio::select! {
            () = app.wake.notified() => {}
            () = tokio::time::sleep(app.claim_interval) => {}
            () = stopping.cancelled() => break,
        }
    }
    // Stopping: a gate's run is dropped where it is (its journal holds what it did), and its
    // lease given up so a restarted relay or another replica takes it at once.
    for (delivery, gate) in held {
        gate.task.abort();
        let _ = gate.task.await;
        if let Err(err) = app.store.release(&delivery, &app.owner).await {
            tracing::warn!(delivery, error = %err, "cannot give up a gate's lease");
        }
    }
}

/// Renews each lease with less than two thirds of its time left; a gate whose lease ended
/// (renewals failed, or this process was paused past it) or went to another replica is no
/// longer driven here.
async fn renew(app: &Arc<AppState>, held: &mut HashMap<String, Held>) {
    // First the leases that ended, with no store call: a store that is slow to answer must not
    // keep a run going past its lease.
    let now = SystemTime::now();
    held.retain(|delivery, gate| {
        let current = now < gate.lease_until;
        if !current {
            gate.task.abort();
            tracing::warn!(delivery, "the gate's lease ended: stopped driving it here");
        }
        current
    });
    let mut lost = Vec::new();
    for (delivery, gate) in held.iter_mut() {
        let now = SystemTime::now();
        let left = gate.lease_until.duration_since(now).unwrap_or_default();
        if left > app.lease * 2 / 3 {
            continue;
        }
        let until = now + app.lease;
        let renewed =
            tokio::time::timeout(app.lease / 3, app.store.renew(delivery, &app.owner, until)).await;
        match renewed {
            Ok(Ok(true)) => gate.lease_until = until,
            Ok(Ok(false)) => lost.push(delivery.clone()),
            Ok(Err(err)) => tracing::warn!(delivery, error = %err, "cannot renew a gate's lease"),
            Err(_) => tracing::warn!(delivery, "renewing a gate's lease took too long"),
        }
    }
    for delivery in lost {
        if let Some(gate) = held.remove(&delivery) {
            gate.task.abort();
            tracing::warn!(delivery, "the gate's lease ended: stopped driving it here");
        }
    }
}

async fn claim(app: &Arc<AppState>, held: &mut HashMap<String, Held>) {
    let room = MAX_HELD.saturating_sub(held.len());
    if room == 0 {
        return;
    }
    let now = SystemTime::now();
    let until = now + app.lease;
    let limit = i64::try_from(room.min(64)).unwrap_or(64);
    let gates = match app.store.claim(&app.owner, now, until, limit).await {
        Ok(gates) => gates,
        Err(err) => {
            tracing::warn!(error = %err, "cannot take gates");
            return;
        }
    };
    for gate in gates {
        let delivery = gate.new.delivery.clone();
        if let Some(driven) = held.get_mut(&delivery) {
            // Taken back by this replica while its run still goes on here: one run, new lease.
            driven.lease_until = until;
            continue;
        }
        tracing::info!(
            delivery = %delivery,
            repository = %gate.new.repository,
            environment = %gate.new.environment,
            run_id = gate.new.run_id,
            state = "taken",
            "gate taken"
        );
        if gate.takes > 1 {
            app.metrics.resumed();
            tracing::info!(
                delivery = %delivery,
                repository = %gate.new.repository,
                environment = %gate.new.environment,
                run_id = gate.new.run_id,
                state = "resumed",
                "gate resumed"
            );
        }
        let task = tokio::spawn(drive(app.clone(), gate));
        held.insert(
            delivery,
            Held {
                task,
                lease_until: until,
            },
        );
    }
}

/// How a gate ended.
struct Decision {
    approved: bool,
    timed_out: bool,
    comment: String,
}

impl Decision {
    fn reject(reason: impl Into<String>) -> Self {
        Decision {
            approved: false,
            timed_out: false,
            comment: format!("**hookgate rejected this deployment**: {}", reason.into()),
        }
    }
}

async fn drive(app: Arc<AppState>, gate: Gate) {
    let new = &gate.new;
    let api = match app.github.get(&new.repository) {
        Ok(api) => api,
        Err(err) => {
            // Nothing can answer it: closed, so it is not taken again and again.
            tracing::error!(delivery = %new.delivery, repository = %new.repository, error = %err, "cannot reach GitHub for the gate; closing it unanswered");
            let _ = app.store.close(&new.delivery, &app.owner).await;
            return;
        }
    };
    let (state, comment, timed_out) = match (&gate.answer, &gate.comment) {
        (Some(answer), Some(comment)) => (answer.clone(), comment.clone(), false),
        _ => {
            let decision = decide(&app, &gate, &api).await;
            let state = if decision.approved {
                "approved"
            } else {
                "rejected"
            };
            if let Err(err) = persist("writing the answer", || {
                app.store
                    .decide(&new.delivery, &app.owner, state, &decision.comment)
            })
            .await
            {
                tracing::warn!(delivery = %new.delivery, error = %err, "cannot write down the gate's answer");
                return;
            }
            tracing::info!(
                delivery = %new.delivery,
                repository = %new.repository,
                environment = %new.environment,
                run_id = new.run_id,
                state,
                "gate decided"
            );
            (state.to_owned(), decision.comment, decision.timed_out)
        }
    };
    send_answer(&app, &gate, &api, &state, &comment, timed_out).await;
}

/// Sends the answer until GitHub takes it (or refuses it for good), then closes the gate.
async fn send_answer(
    app: &AppState,
    gate: &Gate,
    api: &RepositoryApi,
    state: &str,
    comment: &str,
    timed_out: bool,
) {
    let new = &gate.new;
    let mut delay = Duration::from_secs(1);
    let give_up = Instant::now() + ANSWER_PATIENCE;
    let unanswered = loop {
        match api
            .review(new.run_id, &new.environment, Some(state), comment)
            .await
        {
            // A 2xx whose body is not JSON is an answer taken all the same.
            Ok(()) | Err(ApiError::Unexpected { .. }) => break None,
            Err(err) if err.status().is_some_and(answer_refused_for_good) => {
                // The rule was answered already (by a reviewer, or by this App before a
                // restart), or the run is gone: nothing more can be sent.
                break Some(format!("GitHub refused the answer: {err}"));
            }
            Err(err) if Instant::now() + delay >= give_up => {
                break Some(format!("GitHub did not take the answer for a day: {err}"));
            }
            Err(err) => {
                tracing::warn!(delivery = %new.delivery, error = %err, ?delay, "cannot send the gate's answer yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(60));
            }
        }
    };
    if let Err(err) = persist("closing the gate", || {
        app.store.close(&new.delivery, &app.owner)
    })
    .await
    {
        tracing::warn!(delivery = %new.delivery, error = %err, "cannot close the gate");
        return;
    }
    if let Some(why) = unanswered {
        app.metrics.unanswered();
        tracing::error!(
            delivery = %new.delivery,
            repository = %new.repository,
            environment = %new.environment,
            run_id = new.run_id,
            state = "closed",
            reason = %why,
            "gate closed unanswered"
        );
        return;
    }
    let after = SystemTime::now()
        .duration_since(new.received_at)
        .unwrap_or_default();
    app.metrics.answered(state == "approved", timed_out, after);
    if let Ok(open) = app.store.open_count().await {
        app.metrics.set_open(open);
    }
    tracing::info!(
        delivery = %new.delivery,
        repository = %new.repository,
        environment = %new.environment,
        run_id = new.run_id,
        state = "answered",
        answer = state,
        seconds = after.as_secs_f64(),
        "gate answered"
    );
}

/// How long an answer is sent again while GitHub does not take it.
const ANSWER_PATIENCE: Duration = Duration::from_secs(24 * 3600);

/// Whether GitHub refused an answer for good (the rule is answered, the run is gone, the answer
/// is malformed): 400, 404, 410, 422. Rate limits, 401/403 (a token being renewed, a secondary
/// limit), timeouts and 5xx may pass.
fn answer_refused_for_good(status: reqwest::StatusCode) -> bool {
    matches!(status.as_u16(), 400 | 404 | 410 | 422)
}

/// Runs the gate and decides its answer.
async fn decide(app: &Arc<AppState>, gate: &Gate, api: &RepositoryApi) -> Decision {
    let new = &gate.new;
    let Some(left) = new
        .deadline
        .duration_since(SystemTime::now())
        .ok()
        .filter(|left| !left.is_zero())
    else {
        return Decision {
            timed_out: true,
            ..Decision::reject(format!(
                "the gate's time ran out before it could be answered (its `timeout` of {}, or GitHub's 30 days from the deployment's request, less an hour)",
                humantime::format_duration(app.settings.timeout)
            ))
        };
    };
    let event: Value = serde_json::from_str(&new.event).unwrap_or(Value::Null);
    let field = |pointer: &str| {
        event
            .pointer(pointer)
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .unwrap_or_default()
    };
    let sha = field("/deployment/sha");
    let path = app.settings.deployment_file.clone();
    let text = match deployment_file(app, gate, api, &path, &sha, left).await {
        Ok(text) => text,
        Err(reason) => return Decision::reject(reason),
    };
    let name = format!("{}/{}", new.repository, path);
    let loaded = match load_str(&name, &text) {
        Ok(loaded) => loaded,
        Err(diagnostics) => {
            return Decision::reject(format!(
                "the deployment file is not valid:\n```\n{diagnostics}\n```"
            ));
        }
    };
    let mut secrets = IndexMap::new();
    for secret in loaded.secrets_used() {
        if !app.settings.granted(&new.repository, secret) {
            return Decision::reject(format!(
                "the deployment file uses the secret `{secret}`, which this server has not granted to {} (a server's administrator grants it under `secrets:` in the gates configuration)",
                new.repository
            ));
        }
        let Some(value) = app.settings.secret_values.get(secret) else {
            return Decision::reject(format!(
                "the secret `{secret}` is granted to {} but the server has no value for it (HOOKGATE_SECRET_{secret} or the secrets file)",
                new.repository
            ));
        };
        secrets.insert(secret.to_owned(), value.clone());
    }
    let target = app.settings.target_for(&new.environment).to_owned();
    let planned = match plan(&loaded.file, &target, Phase::BeforeDeployment) {
        Ok(planned) => planned,
        Err(err) => return Decision::reject(format!("environment `{}`: {err}", new.environment)),
    };
    let mut github = IndexMap::new();
    github.insert("repository".to_owned(), new.repository.clone());
    github.insert("sha".to_owned(), sha.clone());
    github.insert("ref".to_owned(), field("/deployment/ref"));
    github.insert("environment".to_owned(), new.environment.clone());
    github.insert("run_id".to_owned(), new.run_id.to_string());
    github.insert(
        "event_name".to_owned(),
        "deployment_protection_rule".to_owned(),
    );
    let settings = RunSettings {
        secrets,
        armory: hookgate_engine::ArmoryValues::for_target(
            &loaded.file,
            &target,
            field("/deployment/id"),
        ),
        github,
        run_timeout: Some(left),
        run_timeout_name: format!(
            "the gate's time limit of {} (the server's `timeout`)",
            humantime::format_duration(app.settings.timeout)
        ),
        outbound: Some(app.settings.outbound.clone()),
        ..RunSettings::default()
    };
    let masker = Masker::new();
    let runner = Runner::new(planned, settings)
        .with_http_sender(app.http.clone())
        .with_masker(masker.clone())
        .with_mailbox(Arc::new(GateMailbox::new(
            app.slots.clone(),
            app.store.clone(),
            &new.delivery,
            &app.owner,
        )))
        .with_journal(Arc::new(GateJournal::new(
            app.store.clone(),
            &new.delivery,
            &app.owner,
        )))
        .with_github(api.port())
        .with_reporter(Box::new(StatusReports {
            app: app.clone(),
            api: api.clone(),
            delivery: new.delivery.clone(),
            run_id: new.run_id,
            environment: new.environment.clone(),
            last: std::sync::Mutex::new(None),
        }));
    let report = match runner.run().await {
        Ok(report) => report,
        Err(err) => return Decision::reject(masker.mask(&err.to_string())),
    };
    let comment = masker.mask(&summary(&report, &target, &path));
    Decision {
        approved: report.conclusion.is_passing(),
        timed_out: report.conclusion == Conclusion::TimedOut,
        comment,
    }
}

/// The deployment file's text: read once through the App (from the default branch, or at the
/// deployment's commit where the server allows it) and kept with the gate, so a resumed gate
/// runs the file it started with.
async fn deployment_file(
    app: &AppState,
    gate: &Gate,
    api: &RepositoryApi,
    path: &str,
    sha: &str,
    left: Duration,
) -> Result<String, String> {
    let new = &gate.new;
    let kept = persist("reading the kept deployment file", || {
        app.store.recall(&new.delivery, "file")
    })
    .await
    .map_err(|err| format!("cannot read the kept deployment file: {err}"))?;
    if let Some(text) = kept {
        return Ok(text);
    }
    let at_sha = app.settings.reads_deployment_sha(&new.repository) && !sha.is_empty();
    let git_ref = at_sha.then_some(sha);
    let whence = if at_sha {
        format!("at the deployment's commit {sha}")
    } else {
        "on the default branch".to_owned()
    };
    let give_up = Instant::now() + left;
    let mut delay = Duration::from_secs(1);
    let text = loop {
        match api.file(path, git_ref).await {
            Ok(Some(text)) => break text,
            Ok(None) => {
                return Err(format!(
                    "there is no deployment file `{path}` in {} {whence}",
                    new.repository
                ));
            }
            Err(err)
                if err.status().is_some_and(|s| s.is_client_error())
                    || Instant::now() + delay >= give_up =>
            {
                return Err(format!("cannot read `{path}` {whence}: {err}"));
            }
            Err(err) => {
                tracing::warn!(delivery = %new.delivery, error = %err, "cannot read the deployment file yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(60));
            }
        }
    };
    persist("keeping the deployment file", || {
        app.store.record(&new.delivery, &app.owner, "file", &text)
    })
    .await
    .map_err(|err| format!("cannot keep the deployment file: {err}"))?;
    Ok(text)
}

/// The answer's comment: the verdict and each gate's result.
fn summary(report: &RunReport, target: &str, path: &str) -> String {
    let verdict = if report.conclusion.is_passing() {
        "approved"
    } else {
        "rejected"
    };
    let mut text = format!(
        "**hookgate {verdict} this deployment**: target `{target}` of `{path}`, before deployment\n"
    );
    if report.outcomes.is_empty() {
        text.push_str("\nThe target has no before-deployment gates.\n");
    }
    for (step, outcome) in &report.outcomes {
        let mark = match outcome.conclusion {
            Conclusion::Success => "✅",
            Conclusion::Skipped => "⏭️",
            _ => "❌",
        };
        let message = hookgate_engine::request::excerpt(&outcome.message, 300);
        text.push_str(&format!(
            "\n- {mark} `{}`: {} — {message}",
            step.name, outcome.conclusion
        ));
    }
    text
}

/// Status reports while a gate waits: when a step starts, and its news at most once per
/// interval, up to [`MAX_STATUS_REPORTS`] per gate (counted in the store, so a restart does
/// not start the count over).
struct StatusReports {
    app: Arc<AppState>,
    api: RepositoryApi,
    delivery: String,
    run_id: i64,
    environment: String,
    last: std::sync::Mutex<Option<Instant>>,
}

impl StatusReports {
    async fn send(&self, comment: String, always: bool) {
        {
            let mut last = self
                .last
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if !always && last.is_some_and(|at| at.elapsed() < self.app.report_interval) {
                return;
            }
            *last = Some(Instant::now());
        }
        match self
            .app
            .store
            .count_report(&self.delivery, &self.app.owner, MAX_STATUS_REPORTS)
            .await
        {
            Ok(true) => {}
            Ok(false) => return,
            Err(err) => {
                tracing::warn!(delivery = %self.delivery, error = %err, "cannot count a status report");
                return;
            }
        }
        if let Err(err) = self
            .api
            .review(self.run_id, &self.environment, None, &comment)
            .await
        {
            tracing::warn!(delivery = %self.delivery, error = %err, "cannot send a status report");
        }
    }
}

impl Reporter for StatusReports {
    fn report(&self, event: &Event) -> BoxFuture<'_, ()> {
        let message = match event {
            Event::StepStarted { step } => Some((format!("⏳ `{}`: started", step.name), true)),
            Event::StepProgress { step, message, .. } => {
                Some((format!("⏳ `{}`: {message}", step.name), false))
            }
            _ => None,
        };
        async move {
            if let Some((comment, always)) = message {
                self.send(comment, always).await;
            }
        }
        .boxed()
    }
}
