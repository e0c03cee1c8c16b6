//! Deployment statuses on the target's environment.
//!
//! The deployment is the one named by the `deployment-id` input, else the newest deployment of
//! the gated commit to the environment (the one a job's `environment:` creates), else, when
//! `create-deployment` is true, a new one. It gets `in_progress` when the run starts and
//! `success`, `failure` or `error` (cancelled or timed out: the gate could not decide) when it
//! ends, with `log_url` pointing at the workflow run. With no deployment to report on, nothing
//! is sent.

use futures::future::BoxFuture;
use hookgate_engine::{Conclusion, Event, Reporter, StepInfo, StepOutcome};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::client::{ApiError, GithubClient, PermissionLatch, Resend};
use crate::context::Repository;
use crate::text::{DEPLOYMENT_DESCRIPTION_LIMIT, cut_to_chars, first_line, query_value};

/// What the deployment reporter needs besides the events.
#[derive(Debug, Clone)]
pub struct DeploymentSettings {
    /// The repository.
    pub repository: Repository,
    /// The gated commit.
    pub sha: String,
    /// Another commit the job's deployment may be on: `GITHUB_SHA` when it is not the gated
    /// commit (for pull requests, the merge commit the job checked out).
    pub job_sha: Option<String>,
    /// The environment; the target's name when `None`.
    pub environment: Option<String>,
    /// A deployment given by id.
    pub deployment_id: Option<u64>,
    /// Create a deployment when none is found.
    pub create: bool,
    /// The environment's URL.
    pub environment_url: Option<String>,
    /// The workflow run's page.
    pub log_url: Option<String>,
}

#[derive(Debug, Default)]
struct Deployment {
    id: Option<u64>,
    phase: String,
}

/// Reports the run as statuses of one deployment.
pub struct DeploymentReporter {
    client: GithubClient,
    settings: DeploymentSettings,
    deployment: Mutex<Deployment>,
    latch: PermissionLatch,
}

impl DeploymentReporter {
    /// A reporter that finds its deployment when the run starts.
    pub fn new(client: GithubClient, settings: DeploymentSettings) -> Self {
        DeploymentReporter {
            client,
            settings,
            deployment: Mutex::new(Deployment::default()),
            latch: PermissionLatch::default(),
        }
    }

    fn repo_path(&self) -> String {
        let repo = &self.settings.repository;
        format!("/repos/{}/{}", repo.owner, repo.name)
    }

    async fn find_or_create(&self, environment: &str) -> Result<Option<u64>, ApiError> {
        if let Some(id) = self.settings.deployment_id {
            return Ok(Some(id));
        }
        let shas = std::iter::once(&self.settings.sha).chain(self.settings.job_sha.as_ref());
        for sha in shas {
            let path = format!(
                "{}/deployments?sha={}&environment={}&per_page=1",
                self.repo_path(),
                query_value(sha),
                query_value(environment)
            );
            // GitHub lists the newest first.
            let found = self
                .client
                .send(Method::GET, &path, None, Resend::Idempotent)
                .await?;
            if let Some(id) = found.pointer("/0/id").and_then(Value::as_u64) {
                return Ok(Some(id));
            }
        }
        if !self.settings.create {
            return Ok(None);
        }
        let path = format!("{}/deployments", self.repo_path());
        let body = json!({
            "ref": self.settings.sha,
            "environment": environment,
            "auto_merge": false,
            // The gates are the checks this deployment waits for; do not wait for others.
            "required_contexts": [],
            "description": "Gated by hookgate",
        });
        // Two deployments for one run would confuse the environment's history: not resent.
        let created = self
            .client
            .send(Method::POST, &path, Some(&body), Resend::OnlyIfUnsent)
            .await?;
        created
            .get("id")
            .and_then(Value::as_u64)
            .map(Some)
            .ok_or_else(|| ApiError::Unexpected {
                method: Method::POST,
                path,
                detail: "no deployment `id` (GitHub merged the default branch instead?)".to_owned(),
            })
    }

    async fn set_status(&self, deployment: &Deployment, state: &str, description: &str) {
        let Some(id) = deployment.id else {
            return;
        };
        if self.latch.refused() {
            return;
        }
        // No `environment`: a status that names one moves the deployment to it, and a
        // deployment given by id keeps the environment it was made for.
        let mut body = json!({
            "state": state,
            "description": cut_to_chars(description, DEPLOYMENT_DESCRIPTION_LIMIT),
        });
        if let Some(url) = &self.settings.log_url {
            body["log_url"] = json!(url);
        }
        if let Some(url) = &self.settings.environment_url {
            body["environment_url"] = json!(url);
        }
        let path = format!("{}/deployments/{id}/statuses", self.repo_path());
        // The same state sent twice reads as once in the deployment's history.
        if let Err(error) = self
            .client
            .send(Method::POST, &path, Some(&body), Resend::Idempotent)
            .await
        {
            self.latch.warn(
                &format!("deployment {id} status `{state}`"),
                &error,
                "deployments: write",
            );
        }
    }

    async fn run_started(&self, target: &str, phase: &str, steps: &[StepInfo]) {
        let mut deployment = self.deployment.lock().await;
        let environment = self
            .settings
            .environment
            .clone()
            .unwrap_or_else(|| target.to_owned());
        deployment.phase = phase.to_owned();
        match self.find_or_create(&environment).await {
            Ok(Some(id)) => deployment.id = Some(id),
            Ok(None) => {
                tracing::info!(
                    environment,
                    "no deployment of this commit: no deployment status"
                );
            }
            Err(error) => {
                self.latch.warn(
                    &format!("finding the deployment to `{environment}`"),
                    &error,
                    "deployments: write",
                );
            }
        }
        let description = format!("hookgate: {} {phase} gate(s) running", steps.len());
        self.set_status(&deployment, "in_progress", &description)
            .await;
    }

    async fn run_finished(&self, conclusion: Conclusion, outcomes: &[(StepInfo, StepOutcome)]) {
        let deployment = self.deployment.lock().await;
        let state = match conclusion {
            Conclusion::Success | Conclusion::Skipped => "success",
            Conclusion::Failure => "failure",
            Conclusion::Cancelled | Conclusion::TimedOut => "error",
        };
        let description = match outcomes
            .iter()
            .find(|(_, outcome)| !outcome.conclusion.is_passing())
        {
            Some((step, outcome)) => format!(
                "hookgate: {} {}: {}",
                step.name,
                outcome.conclusion,
                first_line(&outcome.message)
            ),
            None => format!(
                "hookgate: {} {} gate(s) passed",
                outcomes.len(),
                deployment.phase
            ),
        };
        self.set_status(&deployment, state, &description).await;
    }
}

impl Reporter for DeploymentReporter {
    fn report(&self, event: &Event) -> BoxFuture<'_, ()> {
        let event = event.clone();
        Box::pin(async move {
            match &event {
                Event::RunStarted {
                    target,
                    phase,
                    steps,
                } => self.run_started(target, phase, steps).await,
                Event::RunFinished {
                    conclusion,
                    outcomes,
                } => self.run_finished(*conclusion, outcomes).await,
                _ => {}
            }
        })
    }
}
