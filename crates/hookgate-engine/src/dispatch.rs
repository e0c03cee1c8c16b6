//! The GitHub webhook kinds: `repositoryDispatch` (POST `/repos/{repo}/dispatches`) and
//! `workflowDispatch` (POST `/repos/{repo}/actions/workflows/{workflow}/dispatches`, asking for
//! the run's id), and `waitFor: workflowRun`, which polls that run until it completes.
//!
//! This module renders and checks what to send; the calls go through the [`GithubPort`], whose
//! implementation never sends a dispatch again unless GitHub certainly did not act (GitHub has
//! no idempotency key for dispatches).

use std::time::{Duration, SystemTime};

use hookgate_config::model::{RepositoryDispatch, WorkflowDispatch};
// GitHub's limits, which validation checks too; checked again once templates are rendered.
use hookgate_config::{MAX_CLIENT_PAYLOAD_KEYS, MAX_EVENT_TYPE_CHARS, MAX_WORKFLOW_INPUTS};
use serde_json::{Map, Value, json};

use crate::event::Conclusion;
use crate::github::{Dispatch, GithubError, GithubPort};
use crate::poll::PollIntervals;
use crate::template::{self, TemplateSite};

/// Renders every string inside `value` as a template.
fn render_value(
    value: &Value,
    vars: &Value,
    webhook: &str,
    field: &str,
) -> Result<Value, template::TemplateError> {
    Ok(match value {
        Value::String(text) => Value::String(template::render(
            text,
            vars,
            &TemplateSite { webhook, field },
        )?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| render_value(v, vars, webhook, &format!("{field}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, v) in map {
                out.insert(
                    key.clone(),
                    render_value(v, vars, webhook, &format!("{field}.{key}"))?,
                );
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

/// Whether `part` may stand as one segment of an API path: not empty, not `.` or `..` (which a
/// URL parser folds into the segment before, sending the request elsewhere).
fn is_path_segment(part: &str) -> bool {
    !part.is_empty() && part != "." && part != ".."
}

fn check_repository(repository: &str) -> Result<(), String> {
    let valid = repository.split_once('/').is_some_and(|(owner, name)| {
        is_path_segment(owner)
            && is_path_segment(name)
            && !name.contains('/')
            && repository
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
    });
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{repository}` is not a repository (write it as owner/name)"
        ))
    }
}

/// Renders a `repositoryDispatch`.
pub fn repository_dispatch(
    spec: &RepositoryDispatch,
    vars: &Value,
    webhook: &str,
) -> Result<Dispatch, String> {
    let site = |field| TemplateSite { webhook, field };
    let repository = template::render(
        &spec.repository,
        vars,
        &site("repositoryDispatch.repository"),
    )
    .map_err(|e| e.to_string())?;
    check_repository(&repository)?;
    let event_type = template::render(
        &spec.event_type,
        vars,
        &site("repositoryDispatch.eventType"),
    )
    .map_err(|e| e.to_string())?;
    if event_type.is_empty() || event_type.chars().count() > MAX_EVENT_TYPE_CHARS {
        return Err(format!(
            "repositoryDispatch.eventType must be 1 to {MAX_EVENT_TYPE_CHARS} characters, it is {}",
            event_type.chars().count()
        ));
    }
    if spec.client_payload.len() > MAX_CLIENT_PAYLOAD_KEYS {
        return Err(format!(
            "repositoryDispatch.clientPayload has {} top-level keys; GitHub allows {MAX_CLIENT_PAYLOAD_KEYS}",
            spec.client_payload.len()
        ));
    }
    let payload = Value::Object(spec.client_payload.clone().into_iter().collect());
    let payload = render_value(&payload, vars, webhook, "repositoryDispatch.clientPayload")
        .map_err(|e| e.to_string())?;
    Ok(Dispatch {
        path: format!("/repos/{repository}/dispatches"),
        body: json!({"event_type": event_type, "client_payload": payload}),
        repository,
    })
}

/// Renders a `workflowDispatch`.
pub fn workflow_dispatch(
    default_repository: Option<&str>,
    spec: &WorkflowDispatch,
    vars: &Value,
    webhook: &str,
) -> Result<Dispatch, String> {
    let site = |field| TemplateSite { webhook, field };
    let repository = match &spec.repository {
        Some(repository) => {
            template::render(repository, vars, &site("workflowDispatch.repository"))
                .map_err(|e| e.to_string())?
        }
        None => default_repository.map(str::to_owned).ok_or_else(|| {
            "workflowDispatch has no `repository` and GITHUB_REPOSITORY is not set".to_owned()
        })?,
    };
    check_repository(&repository)?;
    let workflow = template::render(&spec.workflow, vars, &site("workflowDispatch.workflow"))
        .map_err(|e| e.to_string())?;
    let breaks_the_path = |c: char| c.is_whitespace() || c.is_control() || "/\\?#%".contains(c);
    if !is_path_segment(&workflow) || workflow.contains(breaks_the_path) {
        return Err(format!(
            "workflowDispatch.workflow `{workflow}` must be a workflow file name (such as tests.yml) or id"
        ));
    }
    let git_ref = template::render(&spec.git_ref, vars, &site("workflowDispatch.ref"))
        .map_err(|e| e.to_string())?;
    if spec.inputs.len() > MAX_WORKFLOW_INPUTS {
        return Err(format!(
            "workflowDispatch.inputs has {} inputs; GitHub allows {MAX_WORKFLOW_INPUTS}",
            spec.inputs.len()
        ));
    }
    let inputs = Value::Object(spec.inputs.clone().into_iter().collect());
    let inputs = render_value(&inputs, vars, webhook, "workflowDispatch.inputs")
        .map_err(|e| e.to_string())?;
    let size = inputs.to_string().chars().count();
    if size > MAX_WORKFLOW_INPUTS_CHARS {
        return Err(format!(
            "workflowDispatch.inputs come to {size} characters of JSON once rendered; GitHub takes at most {MAX_WORKFLOW_INPUTS_CHARS}"
        ));
    }
    Ok(Dispatch {
        path: format!("/repos/{repository}/actions/workflows/{workflow}/dispatches"),
        body: json!({"ref": git_ref, "inputs": inputs, "return_run_details": true}),
        repository,
    })
}

/// The most characters of JSON GitHub takes as a `workflow_dispatch`'s inputs.
pub const MAX_WORKFLOW_INPUTS_CHARS: usize = 65_535;

/// The first wait between reads of a workflow run (without `poll.interval`).
pub const RUN_READ_FIRST: Duration = Duration::from_secs(5);
/// The longest wait between reads of a workflow run: about 120 reads an hour, so that a
/// six-hour wait leaves most of a `GITHUB_TOKEN`'s 1,000 requests an hour for reporting.
pub const RUN_READ_LONGEST: Duration = Duration::from_secs(30);

/// The wait after read number `reads` (from 0) of a workflow run: 5 s, growing by half each time
/// to 30 s.
pub fn run_read_interval(reads: u32) -> Duration {
    let mut wait = RUN_READ_FIRST;
    for _ in 0..reads.min(8) {
        wait = wait.mul_f64(1.5);
    }
    wait.min(RUN_READ_LONGEST)
}

/// The run id GitHub returns for a `workflow_dispatch` with `return_run_details`.
pub fn dispatched_run_id(body: Option<&Value>) -> Option<u64> {
    body?.get("workflow_run_id")?.as_u64()
}

/// The most failed jobs named, and failed steps named per job.
const FAILED_JOBS_SHOWN: usize = 5;
const FAILED_STEPS_SHOWN: usize = 3;

/// Why a run did not pass, appended to its message: `; failed: job `build` (URL): step 4
/// `Run tests`; ...`, or why that could not be read. At most [`FAILED_JOBS_SHOWN`] jobs with
/// [`FAILED_STEPS_SHOWN`] steps each, saying how many more there are.
async fn why_run_failed(github: &dyn GithubPort, repository: &str, run_id: u64) -> String {
    let jobs = match github.failed_jobs(repository, run_id).await {
        Ok(jobs) if jobs.is_empty() => return String::new(),
        Ok(jobs) => jobs,
        Err(err) => return format!("; its jobs could not be read: {err}"),
    };
    let mut parts: Vec<String> = jobs
        .iter()
        .take(FAILED_JOBS_SHOWN)
        .map(|job| {
            let mut part = format!("job `{}` `{}`", job.name, job.conclusion);
            if let Some(url) = &job.html_url {
                part.push_str(&format!(" ({url})"));
            }
            if !job.failed_steps.is_empty() {
                let mut steps: Vec<String> = job
                    .failed_steps
                    .iter()
                    .take(FAILED_STEPS_SHOWN)
                    .map(|step| format!("step {step}"))
                    .collect();
                if job.failed_steps.len() > FAILED_STEPS_SHOWN {
                    steps.push(format!(
                        "{} more",
                        job.failed_steps.len() - FAILED_STEPS_SHOWN
                    ));
                }
                part.push_str(&format!(": {}", steps.join(", ")));
            }
            part
        })
        .collect();
    if jobs.len() > FAILED_JOBS_SHOWN {
        parts.push(format!("{} more jobs", jobs.len() - FAILED_JOBS_SHOWN));
    }
    format!("; not passed: {}", parts.join("; "))
}

/// Maps a completed workflow run's `conclusion`.
pub fn run_conclusion(conclusion: Option<&str>) -> Conclusion {
    match conclusion.unwrap_or("") {
        "success" | "neutral" => Conclusion::Success,
        "skipped" => Conclusion::Skipped,
        "cancelled" => Conclusion::Cancelled,
        "timed_out" => Conclusion::TimedOut,
        _ => Conclusion::Failure,
    }
}

/// How long a dispatched run is looked for when GitHub did not return its id.
pub const RUN_LOOKUP_LIMIT: Duration = Duration::from_secs(60);

/// Finds the run a `workflow_dispatch` started when GitHub answered without its id (GitHub
/// Enterprise Server versions without `return_run_details`): the newest run of that workflow on
/// that ref, started by `workflow_dispatch` since just before the dispatch, looked for every few
/// seconds for up to [`RUN_LOOKUP_LIMIT`]. Two dispatches of one workflow and ref at once cannot
/// be told apart this way; the message says which run was taken.
pub async fn find_dispatched_run(
    github: &dyn GithubPort,
    dispatch: &Dispatch,
    progress: &(dyn Fn(String) + Send + Sync),
) -> Result<u64, String> {
    let workflow = dispatch
        .path
        .rsplit('/')
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let git_ref = dispatch.body["ref"].as_str().unwrap_or_default().to_owned();
    // GitHub's clock and this machine's differ a little; a run of a minute before is not ours.
    let since = SystemTime::now() - Duration::from_secs(60);
    progress(format!(
        "GitHub returned no run id (no `return_run_details`); looking for the newest `{workflow}` run on `{git_ref}`"
    ));
    let started = tokio::time::Instant::now();
    loop {
        match github
            .latest_dispatched_run(&dispatch.repository, &workflow, &git_ref, since)
            .await
        {
            Ok(Some(run_id)) => {
                progress(format!(
                    "took run {run_id}, the newest `{workflow}` run on `{git_ref}`"
                ));
                return Ok(run_id);
            }
            Ok(None) => {}
            Err(GithubError::Status {
                status: 401 | 403 | 404,
                message,
            }) => {
                return Err(format!("cannot look up the dispatched run: {message}"));
            }
            Err(err) => progress(format!(
                "looking up the dispatched run failed, will retry: {err}"
            )),
        }
        if started.elapsed() >= RUN_LOOKUP_LIMIT {
            return Err(format!(
                "no `{workflow}` run on `{git_ref}` appeared within {}s of the dispatch; use `waitFor: callback` instead",
                RUN_LOOKUP_LIMIT.as_secs()
            ));
        }
        tokio::time::sleep(RUN_READ_FIRST).await;
    }
}

/// Reads workflow run `run_id` through `github` until it completes. The caller bounds the time.
pub async fn await_workflow_run(
    github: &dyn GithubPort,
    repository: &str,
    run_id: u64,
    intervals: PollIntervals,
    progress: &(dyn Fn(String) + Send + Sync),
) -> (Conclusion, String) {
    let mut reads = 0u32;
    let mut last_note = String::new();
    loop {
        // A rate-limited read waits as long as GitHub asks, when that is longer than the interval.
        let mut asked_to_wait = None;
        let note = match github.workflow_run(repository, run_id).await {
            Ok(run) => {
                let link = run
                    .html_url
                    .unwrap_or_else(|| format!("{run_id} of {repository}"));
                if run.status == "completed" {
                    let conclusion = run.conclusion.as_deref();
                    let mapped = run_conclusion(conclusion);
                    let mut message = format!(
                        "workflow run {link} concluded `{}`",
                        conclusion.unwrap_or("unknown")
                    );
                    if !mapped.is_passing() {
                        message.push_str(&why_run_failed(github, repository, run_id).await);
                    }
                    return (mapped, message);
                }
                format!("workflow run {link} is `{}`", run.status)
            }
            Err(GithubError::Status {
                status: 401 | 404,
                message,
            }) => {
                return (
                    Conclusion::Failure,
                    format!("cannot read workflow run {run_id} of {repository}: {message}"),
                );
            }
            Err(GithubError::Unavailable { reason, wait }) => {
                asked_to_wait = wait;
                format!("reading the workflow run failed, will retry: {reason}")
            }
            Err(err) => format!("reading the workflow run failed, will retry: {err}"),
        };
        if note != last_note {
            progress(note.clone());
            last_note = note;
        }
        let interval = match intervals.fixed {
            Some(fixed) => fixed.max(Duration::from_millis(50)),
            None => run_read_interval(reads),
        };
        reads = reads.saturating_add(1);
        tokio::time::sleep(asked_to_wait.map_or(interval, |wait| wait.max(interval))).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use indexmap::IndexMap;

    use super::*;

    #[test]
    fn a_repository_dispatch_renders_payload_strings() {
        let mut payload = IndexMap::new();
        payload.insert("callback".to_owned(), json!("{{ callback.uri }}"));
        payload.insert("n".to_owned(), json!({"deep": ["{{ context.env }}", 3]}));
        let spec = RepositoryDispatch {
            repository: "org/{{ context.repo }}".into(),
            event_type: "run-tests".into(),
            client_payload: payload,
            cancel_event_type: None,
        };
        let vars = json!({"callback": {"uri": "https://relay/s/1"}, "context": {"env": "staging", "repo": "tests"}});
        let out = repository_dispatch(&spec, &vars, "w").unwrap();
        assert_eq!(out.path, "/repos/org/tests/dispatches");
        assert_eq!(out.repository, "org/tests");
        assert_eq!(
            out.body,
            json!({"event_type": "run-tests", "client_payload": {"callback": "https://relay/s/1", "n": {"deep": ["staging", 3]}}})
        );
    }

    #[test]
    fn github_limits_are_checked() {
        let mut spec = RepositoryDispatch {
            repository: "org/tests".into(),
            event_type: "x".repeat(101),
            client_payload: IndexMap::new(),
            cancel_event_type: None,
        };
        assert!(
            repository_dispatch(&spec, &json!({}), "w")
                .unwrap_err()
                .contains("1 to 100")
        );
        spec.event_type = "ok".into();
        for i in 0..11 {
            spec.client_payload.insert(format!("k{i}"), json!(i));
        }
        assert!(
            repository_dispatch(&spec, &json!({}), "w")
                .unwrap_err()
                .contains("10")
        );
        spec.client_payload.clear();
        for repository in ["not-a-repo", "org/..", "../x", "org/.", "a/b/c"] {
            spec.repository = repository.into();
            assert!(
                repository_dispatch(&spec, &json!({}), "w").is_err(),
                "{repository}"
            );
        }
    }

    #[test]
    fn a_workflow_name_cannot_leave_its_path() {
        let mut spec = WorkflowDispatch {
            repository: None,
            workflow: String::new(),
            git_ref: "main".into(),
            inputs: IndexMap::new(),
        };
        for workflow in [
            "",
            "..",
            ".",
            "a/b.yml",
            "t.yml?x=1",
            "t.yml#x",
            "t%2F.yml",
            "t .yml",
        ] {
            spec.workflow = workflow.into();
            assert!(
                workflow_dispatch(Some("me/app"), &spec, &json!({}), "w").is_err(),
                "{workflow:?}"
            );
        }
        spec.workflow = "1234".into();
        assert!(workflow_dispatch(Some("me/app"), &spec, &json!({}), "w").is_ok());
    }

    #[test]
    fn a_workflow_dispatch_asks_for_run_details_and_defaults_the_repository() {
        let spec = WorkflowDispatch {
            repository: None,
            workflow: "tests.yml".into(),
            git_ref: "main".into(),
            inputs: IndexMap::new(),
        };
        let out = workflow_dispatch(Some("me/app"), &spec, &json!({}), "w").unwrap();
        assert_eq!(
            out.path,
            "/repos/me/app/actions/workflows/tests.yml/dispatches"
        );
        assert_eq!(out.body["return_run_details"], json!(true));
        assert_eq!(out.body["ref"], json!("main"));
    }

    #[test]
    fn workflow_runs_are_read_less_often_as_they_go_on() {
        let waits: Vec<u64> = (0..8)
            .map(|n| run_read_interval(n).as_millis() as u64)
            .collect();
        assert_eq!(
            waits,
            [5000, 7500, 11250, 16875, 25312, 30000, 30000, 30000]
        );
        // Six hours of reading fit a GITHUB_TOKEN's hourly budget with most of it to spare.
        let (mut elapsed, mut reads) = (Duration::ZERO, 0u32);
        while elapsed < Duration::from_secs(6 * 3600) {
            elapsed += run_read_interval(reads);
            reads += 1;
        }
        assert!(reads < 6 * 130, "{reads} reads in six hours");
    }

    #[test]
    fn workflow_inputs_are_bounded_in_size_once_rendered() {
        let mut inputs = IndexMap::new();
        inputs.insert("blob".to_owned(), json!("{{ context.blob }}"));
        let spec = WorkflowDispatch {
            repository: Some("org/tests".into()),
            workflow: "load.yml".into(),
            git_ref: "main".into(),
            inputs,
        };
        let vars = |n: usize| json!({"context": {"blob": "x".repeat(n)}});
        assert!(workflow_dispatch(None, &spec, &vars(60_000), "w").is_ok());
        let err = workflow_dispatch(None, &spec, &vars(70_000), "w").unwrap_err();
        assert!(err.contains("GitHub takes at most 65535"), "{err}");
    }

    #[test]
    fn run_conclusions_map_to_step_conclusions() {
        assert_eq!(run_conclusion(Some("success")), Conclusion::Success);
        assert_eq!(run_conclusion(Some("failure")), Conclusion::Failure);
        assert_eq!(run_conclusion(Some("startup_failure")), Conclusion::Failure);
        assert_eq!(run_conclusion(Some("cancelled")), Conclusion::Cancelled);
        assert_eq!(run_conclusion(Some("timed_out")), Conclusion::TimedOut);
        assert_eq!(run_conclusion(None), Conclusion::Failure);
        assert_eq!(
            dispatched_run_id(Some(&json!({"workflow_run_id": 42}))),
            Some(42)
        );
        assert_eq!(dispatched_run_id(Some(&json!({}))), None);
    }
}
