//! The engine's GitHub port, implemented with this crate's one REST client: dispatches are sent
//! with [`Resend::OnlyIfUnsent`] (again only after a rate limit or a connection never opened),
//! workflow runs are read with [`Resend::Idempotent`].

use std::time::SystemTime;

use futures::future::BoxFuture;
use hookgate_engine::github::{
    Dispatch, Dispatched, FailedJob, GithubError, GithubPort, WorkflowRun,
};
use reqwest::Method;
use serde_json::Value;

use crate::client::{ApiError, GithubClient, Resend};
use crate::text::query_value;

/// GitHub's REST API for the engine.
pub struct GithubRest {
    client: GithubClient,
    repository: Option<String>,
}

impl GithubRest {
    /// The port over `client`, with the run's `repository` (`owner/name`) as the default.
    pub fn new(client: GithubClient, repository: Option<String>) -> Self {
        GithubRest { client, repository }
    }
}

fn port_error(err: ApiError) -> GithubError {
    match err {
        ApiError::Status { status, .. } => GithubError::Status {
            status: status.as_u16(),
            message: err.to_string(),
        },
        ApiError::RateLimited { wait, .. } => GithubError::Unavailable {
            reason: err.to_string(),
            wait: Some(wait),
        },
        other => GithubError::Unavailable {
            reason: other.to_string(),
            wait: None,
        },
    }
}

impl GithubPort for GithubRest {
    fn repository(&self) -> Option<&str> {
        self.repository.as_deref()
    }

    fn dispatch<'a>(
        &'a self,
        dispatch: &'a Dispatch,
        progress: &'a (dyn Fn(String) + Send + Sync),
    ) -> BoxFuture<'a, Result<Dispatched, GithubError>> {
        Box::pin(async move {
            let (status, body) = self
                .client
                .exchange(
                    Method::POST,
                    &dispatch.path,
                    Some(&dispatch.body),
                    Resend::OnlyIfUnsent,
                    progress,
                )
                .await
                .map_err(port_error)?;
            Ok(Dispatched {
                status: status.as_u16(),
                body,
            })
        })
    }

    fn workflow_run<'a>(
        &'a self,
        repository: &'a str,
        run_id: u64,
    ) -> BoxFuture<'a, Result<WorkflowRun, GithubError>> {
        Box::pin(async move {
            let path = format!("/repos/{repository}/actions/runs/{run_id}");
            let run = self
                .client
                .send(Method::GET, &path, None, Resend::Idempotent)
                .await
                .map_err(port_error)?;
            let text = |name: &str| run.get(name).and_then(Value::as_str).map(str::to_owned);
            Ok(WorkflowRun {
                status: text("status").unwrap_or_else(|| "unknown".to_owned()),
                conclusion: text("conclusion"),
                html_url: text("html_url"),
            })
        })
    }

    fn failed_jobs<'a>(
        &'a self,
        repository: &'a str,
        run_id: u64,
    ) -> BoxFuture<'a, Result<Vec<FailedJob>, GithubError>> {
        Box::pin(async move {
            // The latest attempt's jobs; a run has at most a few hundred, the first page names
            // what failed first.
            let path = format!(
                "/repos/{repository}/actions/runs/{run_id}/jobs?filter=latest&per_page=100"
            );
            let answer = self
                .client
                .send(Method::GET, &path, None, Resend::Idempotent)
                .await
                .map_err(port_error)?;
            Ok(failed_jobs_of(&answer))
        })
    }

    fn latest_dispatched_run<'a>(
        &'a self,
        repository: &'a str,
        workflow: &'a str,
        git_ref: &'a str,
        since: SystemTime,
    ) -> BoxFuture<'a, Result<Option<u64>, GithubError>> {
        Box::pin(async move {
            let branch = git_ref
                .strip_prefix("refs/heads/")
                .or_else(|| git_ref.strip_prefix("refs/tags/"))
                .unwrap_or(git_ref);
            let since = humantime::format_rfc3339_seconds(since);
            let path = format!(
                "/repos/{repository}/actions/workflows/{workflow}/runs?event=workflow_dispatch&branch={}&created=%3E%3D{since}&per_page=20",
                query_value(branch)
            );
            let answer = self
                .client
                .send(Method::GET, &path, None, Resend::Idempotent)
                .await
                .map_err(port_error)?;
            Ok(answer
                .get("workflow_runs")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|run| run.get("id").and_then(Value::as_u64))
                .max())
        })
    }

    fn cancel_run<'a>(
        &'a self,
        repository: &'a str,
        run_id: u64,
    ) -> BoxFuture<'a, Result<(), GithubError>> {
        Box::pin(async move {
            let path = format!("/repos/{repository}/actions/runs/{run_id}/cancel");
            // Asking twice to cancel one run is asking once.
            self.client
                .send(Method::POST, &path, None, Resend::Idempotent)
                .await
                .map(drop)
                .map_err(port_error)
        })
    }
}

/// The jobs of a `GET .../actions/runs/{id}/jobs` answer that completed without passing, with
/// their failed steps (`NUMBER `NAME``).
fn failed_jobs_of(answer: &Value) -> Vec<FailedJob> {
    let text =
        |value: &Value, name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
    let passed = |conclusion: &str| matches!(conclusion, "success" | "skipped" | "neutral");
    answer
        .get("jobs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|job| {
            let conclusion = text(job, "conclusion")?;
            if passed(&conclusion) {
                return None;
            }
            let failed_steps = job
                .get("steps")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|step| text(step, "conclusion").as_deref() == Some("failure"))
                .map(|step| {
                    let number = step.get("number").and_then(Value::as_u64).unwrap_or(0);
                    let name = text(step, "name").unwrap_or_default();
                    format!("{number} `{name}`")
                })
                .collect();
            Some(FailedJob {
                name: text(job, "name").unwrap_or_else(|| "(unnamed)".to_owned()),
                conclusion,
                html_url: text(job, "html_url"),
                failed_steps,
            })
        })
        .collect()
}
