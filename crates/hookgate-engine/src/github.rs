//! The engine's port to GitHub: the REST calls its GitHub webhook kinds make, and nothing else.
//! The engine renders and checks what to send (`crate::dispatch`); hookgate-github implements
//! the port with its one REST client, which owns authentication, GitHub's headers and the one
//! rule for rate limits and for what may be sent again.

use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use serde_json::Value;

/// A dispatch to send: `POST path` with `body` (`repository_dispatch` or `workflow_dispatch`).
#[derive(Debug, Clone, PartialEq)]
pub struct Dispatch {
    /// The repository it goes to, `owner/name`.
    pub repository: String,
    /// The REST path, such as `/repos/owner/name/dispatches`.
    pub path: String,
    /// The JSON body.
    pub body: Value,
}

/// GitHub's answer to a dispatch.
#[derive(Debug, Clone, PartialEq)]
pub struct Dispatched {
    /// The status (204 for `repository_dispatch`, 200 with run details for `workflow_dispatch`).
    pub status: u16,
    /// The body's JSON; `Null` when empty.
    pub body: Value,
}

/// A workflow run as GitHub reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowRun {
    /// `queued`, `in_progress`, `completed`, ...
    pub status: String,
    /// Set once completed: `success`, `failure`, `cancelled`, ...
    pub conclusion: Option<String>,
    /// Where people see it.
    pub html_url: Option<String>,
}

/// A job of a workflow run that did not succeed, with its steps that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedJob {
    /// The job's name.
    pub name: String,
    /// Its conclusion: `failure`, `cancelled`, `timed_out`, ...
    pub conclusion: String,
    /// Its page, where the log is.
    pub html_url: Option<String>,
    /// Its steps that failed, as `NUMBER NAME`, in order.
    pub failed_steps: Vec<String>,
}

/// Why a GitHub call failed. The text is safe to show (no token).
#[derive(Debug, Clone, thiserror::Error)]
pub enum GithubError {
    /// GitHub answered with an error status.
    #[error("{message}")]
    Status {
        /// The status.
        status: u16,
        /// What was done and GitHub's message.
        message: String,
    },
    /// No answer came, or GitHub asked to wait longer than the client waits; `wait` is how long
    /// GitHub asked for, when it did. A dispatch is not sent again after this: it may have
    /// reached GitHub.
    #[error("{reason}")]
    Unavailable {
        /// What went wrong.
        reason: String,
        /// The wait GitHub asked for.
        wait: Option<Duration>,
    },
}

/// What the engine needs of GitHub.
pub trait GithubPort: Send + Sync {
    /// The repository of the run (`owner/name`), the default target of `workflowDispatch`.
    fn repository(&self) -> Option<&str>;

    /// Sends `dispatch` once: again only when GitHub surely did not act on it (a rate limit, a
    /// connection never opened). `progress` hears each wait.
    fn dispatch<'a>(
        &'a self,
        dispatch: &'a Dispatch,
        progress: &'a (dyn Fn(String) + Send + Sync),
    ) -> BoxFuture<'a, Result<Dispatched, GithubError>>;

    /// Reads workflow run `run_id` of `repository`.
    fn workflow_run<'a>(
        &'a self,
        repository: &'a str,
        run_id: u64,
    ) -> BoxFuture<'a, Result<WorkflowRun, GithubError>>;

    /// The jobs of workflow run `run_id` (its latest attempt) that did not succeed.
    fn failed_jobs<'a>(
        &'a self,
        repository: &'a str,
        run_id: u64,
    ) -> BoxFuture<'a, Result<Vec<FailedJob>, GithubError>>;

    /// The newest run of `workflow` on `git_ref` of `repository` started by `workflow_dispatch`
    /// at or after `since`, if any.
    fn latest_dispatched_run<'a>(
        &'a self,
        repository: &'a str,
        workflow: &'a str,
        git_ref: &'a str,
        since: SystemTime,
    ) -> BoxFuture<'a, Result<Option<u64>, GithubError>>;

    /// Asks GitHub to cancel workflow run `run_id`.
    fn cancel_run<'a>(
        &'a self,
        repository: &'a str,
        run_id: u64,
    ) -> BoxFuture<'a, Result<(), GithubError>>;
}
