//! hookgate on GitHub: the reporters that show a run where GitHub users look (check runs on the
//! gated commit, deployment statuses on the environment, the job summary, step outputs and the
//! job's log), GitHub authentication (a token, or a GitHub App's installation tokens), and the
//! engine's GitHub port, through which it sends `repository_dispatch` and `workflow_dispatch`.
//! Every call goes through one REST client ([`client`]) with one rule for rate limits.
//!
//! Start with [`Actions::from_env`], then take [`Actions::reporters`] and
//! [`Actions::github_port`]; both share one token source, so a GitHub App's installation token
//! is fetched once.
//!
//! The reporters that call GitHub run [`detached`], in tasks of their own, so an API call or a
//! rate-limit wait never delays the job's log; the run's end waits until they are done.
//!
//! ## Why reqwest and not octocrab
//!
//! The calls go through [`client::RestClient`], a thin layer over reqwest, rather than octocrab.
//! hookgate must decide per request whether it may be sent again: a PATCH of a check run may be,
//! a POST that creates something only when GitHub surely did not act on it. octocrab 0.54 sets
//! its retry policy (`RetryConfig`) for the whole client, inside a tower layer: its default
//! (`Simple(3)`) sends any method again at once on a 5xx or a transport error, POSTs included,
//! and its rate-limit mode is equally blind to the method. The eight endpoints used need only
//! a few fields of each answer, so octocrab's typed models would add little; the JWT of a
//! GitHub App is signed with jsonwebtoken (RS256), as octocrab does.
//!
//! ## Failures
//!
//! A reporting failure (GitHub down, a missing permission) is written as a `::warning::` and never
//! changes the gate's verdict. Bad inputs (`deployment-id` that is not a number, a key that is
//! not an RSA key) are errors before the run starts.

mod actions_log;
mod auth;
mod checks;
pub mod client;
pub mod context;
mod deployments;
mod detached;
mod port;
mod summary;
mod text;
mod workflow_commands;

use std::sync::Arc;
use std::time::Duration;

use hookgate_engine::{GithubPort, Reporter};

pub use auth::{AppTokens, AuthError, TokenSource};
pub use context::{GithubContext, input};
pub use port::GithubRest;

use crate::actions_log::ActionsLogReporter;
use crate::auth::token_source;
use crate::checks::{CheckRunReporter, CheckRunSettings};
use crate::client::{ApiError, GithubClient, RestClient, RetryPolicy};
use crate::context::{ContextError, Credentials};
use crate::deployments::{DeploymentReporter, DeploymentSettings};
use crate::detached::Detached;
use crate::summary::{JobSummaryReporter, SummaryFiles};
use crate::workflow_commands::{emit, warning_line};

/// The longest rate-limit wait a dispatch accepts before its step fails.
const DISPATCH_MAX_WAIT: Duration = Duration::from_secs(600);

/// The shortest time between two progress updates of one check run.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(5);

/// GitHub reporting that cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An input or `GITHUB_*` variable is unusable.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// GitHub App credentials are unusable.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The HTTP client cannot be built.
    #[error(transparent)]
    Client(#[from] ApiError),
}

/// GitHub, as seen from one run: its context and, when credentials were given, an API client.
pub struct Actions {
    context: GithubContext,
    rest: RestClient,
    tokens: Option<Arc<dyn TokenSource>>,
    progress_interval: Duration,
}

impl Actions {
    /// Reads the environment (see [`GithubContext::from_env`]) and sets up authentication.
    pub fn from_env() -> Result<Self, Error> {
        Self::new(GithubContext::from_env()?, RetryPolicy::default())
    }

    /// Sets up authentication for `context`, retrying API calls by `policy`.
    pub fn new(context: GithubContext, policy: RetryPolicy) -> Result<Self, Error> {
        if context.actions
            && let Some(Credentials::App { private_key, .. }) = &context.credentials
        {
            // The runner masks secrets it passes in, but a key typed into a variable is not one.
            let body: Vec<&str> = private_key
                .expose()
                .lines()
                .filter(|line| !line.starts_with("-----"))
                .collect();
            workflow_commands::add_mask(&body.join("\n"));
        }
        let rest = RestClient::new(&context.api_url, policy)?;
        let tokens = match &context.credentials {
            Some(credentials) => Some(token_source(
                credentials,
                &rest,
                context.repository.as_ref(),
                context.actions,
            )?),
            None => None,
        };
        Ok(Actions {
            context,
            rest,
            tokens,
            progress_interval: PROGRESS_INTERVAL,
        })
    }

    /// Changes the shortest time between two progress updates of one check run.
    pub fn with_progress_interval(mut self, interval: Duration) -> Self {
        self.progress_interval = interval;
        self
    }

    /// The context read from the environment.
    pub fn context(&self) -> &GithubContext {
        &self.context
    }

    /// The engine's port to GitHub (dispatches and workflow runs), when a token or App was
    /// given; it shares this run's client and tokens with the reporters.
    pub fn github_port(&self) -> Option<Arc<dyn GithubPort>> {
        // A gate's dispatch waits out a rate limit as long as GitHub asks, up to ten minutes (the
        // step's own timeout still bounds it); the reporters give up sooner.
        let rest = self.rest.clone().with_max_wait(DISPATCH_MAX_WAIT);
        let client = GithubClient::new(rest, Arc::clone(self.tokens.as_ref()?));
        Some(Arc::new(port::GithubRest::new(
            client,
            self.context.repository.as_ref().map(ToString::to_string),
        )))
    }

    /// Where API tokens come from, when a token or App was given.
    pub fn tokens(&self) -> Option<Arc<dyn TokenSource>> {
        self.tokens.clone()
    }

    /// The reporters for a run inside GitHub Actions, as the inputs ask; none outside Actions.
    /// Reasons a reporter is left out (no token, no repository) are written as warnings.
    pub fn reporters(&self) -> Vec<Box<dyn Reporter>> {
        let ctx = &self.context;
        if !ctx.actions {
            return Vec::new();
        }
        let mut warnings: Vec<String> = ctx.warnings.clone();
        let mut reporters: Vec<Box<dyn Reporter>> = vec![Box::new(ActionsLogReporter::new())];
        let settings = &ctx.settings;
        // Outputs are always written: later steps may read them even without a summary.
        reporters.push(Box::new(JobSummaryReporter::new(SummaryFiles {
            step_summary: ctx.step_summary.clone().filter(|_| settings.job_summary),
            output: ctx.output.clone(),
            run_url: ctx.run_url(),
        })));
        let wants_api = settings.check_runs || settings.deployment_status;
        let api = match (&self.tokens, &ctx.repository, &ctx.sha) {
            (Some(tokens), Some(repository), Some(sha)) => Some((
                GithubClient::new(self.rest.clone(), Arc::clone(tokens)),
                repository,
                sha,
            )),
            (None, _, _) if wants_api => {
                warnings.push(
                    "no `github-token` and no GitHub App: check runs and deployment statuses are not reported"
                        .to_owned(),
                );
                None
            }
            (_, _, _) if wants_api => {
                warnings.push(
                    "GITHUB_REPOSITORY or GITHUB_SHA is not set: check runs and deployment statuses are not reported"
                        .to_owned(),
                );
                None
            }
            _ => None,
        };
        if let Some((client, repository, sha)) = api {
            if settings.check_runs {
                let run_key = format!(
                    "{}.{}",
                    ctx.run_id.as_deref().unwrap_or("local"),
                    ctx.run_attempt.as_deref().unwrap_or("1")
                );
                reporters.push(Box::new(Detached::new(CheckRunReporter::new(
                    client.clone(),
                    CheckRunSettings {
                        repository: repository.clone(),
                        head_sha: sha.clone(),
                        name_template: settings.check_name.clone(),
                        aggregate_name_template: settings
                            .aggregate_check
                            .then(|| settings.aggregate_check_name.clone()),
                        details_url: ctx.run_url(),
                        run_key,
                        progress_interval: self.progress_interval,
                    },
                ))));
            }
            if settings.deployment_status {
                reporters.push(Box::new(Detached::new(DeploymentReporter::new(
                    client,
                    DeploymentSettings {
                        repository: repository.clone(),
                        sha: sha.clone(),
                        job_sha: ctx.job_sha.clone().filter(|job_sha| job_sha != sha),
                        environment: settings.environment.clone(),
                        deployment_id: settings.deployment_id,
                        create: settings.create_deployment,
                        environment_url: settings.environment_url.clone(),
                        log_url: ctx.run_url(),
                    },
                ))));
            }
        }
        let lines: Vec<String> = warnings
            .iter()
            .map(|w| warning_line("hookgate reporting", w))
            .collect();
        emit(&lines);
        reporters
    }
}
