//! The run's GitHub Actions environment, read once: the `GITHUB_*` variables exactly as the
//! runner sets them, the event payload (for the pull request's head commit), and the action's
//! inputs from `INPUT_*` variables.
//!
//! Everything is read through a lookup function so tests can hand in a map instead of the
//! process environment; [`GithubContext::from_env`] is the one place that reads the real one.

use std::fmt;
use std::path::PathBuf;

use serde_json::Value;

/// The name of the environment variable the runner sets for the action input `name`: upper
/// case, spaces become underscores, hyphens are kept (`github-token` → `INPUT_GITHUB-TOKEN`).
pub fn input_variable(name: &str) -> String {
    format!("INPUT_{}", name.replace(' ', "_").to_uppercase())
}

/// The value of the action input `name` from the process environment, trimmed; `None` when it
/// is unset or empty (the runner sets every declared input, empty when the user gave none).
pub fn input(name: &str) -> Option<String> {
    input_from(&|key| std::env::var(key).ok(), name)
}

fn input_from(lookup: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    lookup(&input_variable(name))
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

/// A value that must never be logged: its `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A repository as `owner/name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    /// The owner (user or organisation).
    pub owner: String,
    /// The repository's name.
    pub name: String,
}

impl Repository {
    /// Parses `owner/name`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let (owner, name) = text.trim().split_once('/')?;
        let valid = |part: &str| !part.is_empty() && !part.contains(['/', ' ', '?', '#']);
        (valid(owner) && valid(name)).then(|| Repository {
            owner: owner.to_owned(),
            name: name.to_owned(),
        })
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

/// How hookgate authenticates to GitHub's API.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// A token used as it is: the job's `GITHUB_TOKEN` or a personal access token.
    Token(Secret),
    /// A GitHub App: its id and PEM private key, exchanged for an installation token.
    App {
        /// The App's id (a number, or the client id, both are accepted as the JWT issuer).
        app_id: String,
        /// The PEM-encoded RSA private key.
        private_key: Secret,
    },
}

/// What the reporters are asked to do, from the action's inputs.
#[derive(Debug, Clone)]
pub struct ReportSettings {
    /// Create one check run per step (`check-runs`, default true).
    pub check_runs: bool,
    /// The check run's name, with `{target}`, `{phase}` and `{step}` replaced (`check-name`).
    pub check_name: String,
    /// Also create one check run for the whole run (`aggregate-check`, default false).
    pub aggregate_check: bool,
    /// The aggregate check's name, with `{target}` and `{phase}` replaced (`aggregate-check-name`).
    pub aggregate_check_name: String,
    /// Report deployment statuses (`deployment-status`, default true).
    pub deployment_status: bool,
    /// The deployment to report on (`deployment-id`); otherwise the latest for the commit.
    pub deployment_id: Option<u64>,
    /// Create a deployment when none is found (`create-deployment`, default false).
    pub create_deployment: bool,
    /// The environment's name (`environment`); the target's name when not given.
    pub environment: Option<String>,
    /// The environment's URL shown on the deployment (`environment-url`).
    pub environment_url: Option<String>,
    /// Write the job summary (`job-summary`, default true). Outputs are written regardless.
    pub job_summary: bool,
}

/// The default check-run name: stable across runs, so branch protection can require it.
pub const DEFAULT_CHECK_NAME: &str = "hookgate / {target} / {step}";
/// The default name of the aggregate check run.
pub const DEFAULT_AGGREGATE_CHECK_NAME: &str = "hookgate / {target}";

/// An input or variable that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// A boolean input holds something other than true or false.
    #[error("input `{input}` must be `true` or `false`, not `{value}`")]
    NotBoolean {
        /// The input's name.
        input: &'static str,
        /// What it holds.
        value: String,
    },
    /// `deployment-id` is not a number.
    #[error("input `deployment-id` must be a deployment's numeric id, not `{0}`")]
    BadDeploymentId(String),
    /// Only one of `app-id` and `app-private-key` was given.
    #[error("inputs `app-id` and `app-private-key` go together; only `{given}` was given")]
    IncompleteApp {
        /// The one that was given.
        given: &'static str,
    },
    /// `GITHUB_REPOSITORY` is not `owner/name`.
    #[error("GITHUB_REPOSITORY must be `owner/name`, not `{0}`")]
    BadRepository(String),
}

/// The run's GitHub Actions environment.
#[derive(Debug, Clone)]
pub struct GithubContext {
    /// `GITHUB_ACTIONS=true`: running inside a GitHub Actions job.
    pub actions: bool,
    /// The REST API's base URL without a trailing slash (`GITHUB_API_URL`; GitHub Enterprise
    /// Server sets its own).
    pub api_url: String,
    /// The web server's URL (`GITHUB_SERVER_URL`), for links to the run.
    pub server_url: String,
    /// The repository the workflow runs in (`GITHUB_REPOSITORY`).
    pub repository: Option<Repository>,
    /// The commit being gated: the pull request's head for `pull_request` and
    /// `pull_request_target` events, else `GITHUB_SHA`.
    pub sha: Option<String>,
    /// `GITHUB_SHA`: the commit the job checked out (for pull requests, the merge commit).
    pub job_sha: Option<String>,
    /// `GITHUB_EVENT_NAME`.
    pub event_name: Option<String>,
    /// `GITHUB_RUN_ID`.
    pub run_id: Option<String>,
    /// `GITHUB_RUN_ATTEMPT`.
    pub run_attempt: Option<String>,
    /// `GITHUB_JOB` (the job's id).
    pub job: Option<String>,
    /// `GITHUB_WORKFLOW` (the workflow's name).
    pub workflow: Option<String>,
    /// `GITHUB_STEP_SUMMARY`: the job summary file.
    pub step_summary: Option<PathBuf>,
    /// `GITHUB_OUTPUT`: the step outputs file.
    pub output: Option<PathBuf>,
    /// How to authenticate, when a token or App was given.
    pub credentials: Option<Credentials>,
    /// What to report.
    pub settings: ReportSettings,
    /// Things that were odd but not fatal (an unreadable event file), to show as warnings.
    pub warnings: Vec<String>,
}

impl GithubContext {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ContextError> {
        Self::from_lookup(&|key| std::env::var(key).ok())
    }

    /// Reads variables through `lookup` (the process environment, or a map in tests).
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ContextError> {
        let var = |key: &str| lookup(key).filter(|value| !value.is_empty());
        let input = |name: &str| input_from(lookup, name);
        let mut warnings = Vec::new();

        let repository = match var("GITHUB_REPOSITORY") {
            Some(text) => Some(Repository::parse(&text).ok_or(ContextError::BadRepository(text))?),
            None => None,
        };
        let event_name = var("GITHUB_EVENT_NAME");
        let job_sha = var("GITHUB_SHA");
        let mut sha = job_sha.clone();
        if matches!(
            event_name.as_deref(),
            Some("pull_request" | "pull_request_target")
        ) {
            match pull_request_head(var("GITHUB_EVENT_PATH")) {
                Ok(head) => sha = Some(head),
                Err(why) => warnings.push(format!(
                    "cannot find the pull request's head commit ({why}); reporting on GITHUB_SHA instead"
                )),
            }
        }

        let app_id = input("app-id");
        let app_key = input("app-private-key");
        let credentials = match (app_id, app_key) {
            (Some(app_id), Some(key)) => Some(Credentials::App {
                app_id,
                private_key: Secret::new(unescape_pem(&key)),
            }),
            (Some(_), None) => return Err(ContextError::IncompleteApp { given: "app-id" }),
            (None, Some(_)) => {
                return Err(ContextError::IncompleteApp {
                    given: "app-private-key",
                });
            }
            (None, None) => input("github-token")
                .or_else(|| var("GITHUB_TOKEN"))
                .map(|token| Credentials::Token(Secret::new(token))),
        };

        let boolean = |name: &'static str, default: bool| -> Result<bool, ContextError> {
            match input(name) {
                None => Ok(default),
                Some(value) => {
                    parse_bool(&value).ok_or(ContextError::NotBoolean { input: name, value })
                }
            }
        };
        let deployment_id = match input("deployment-id") {
            Some(text) => Some(
                text.parse::<u64>()
                    .map_err(|_| ContextError::BadDeploymentId(text))?,
            ),
            None => None,
        };
        let settings = ReportSettings {
            check_runs: boolean("check-runs", true)?,
            check_name: input("check-name").unwrap_or_else(|| DEFAULT_CHECK_NAME.to_owned()),
            aggregate_check: boolean("aggregate-check", false)?,
            aggregate_check_name: input("aggregate-check-name")
                .unwrap_or_else(|| DEFAULT_AGGREGATE_CHECK_NAME.to_owned()),
            deployment_status: boolean("deployment-status", true)?,
            deployment_id,
            create_deployment: boolean("create-deployment", false)?,
            environment: input("environment"),
            environment_url: input("environment-url"),
            job_summary: boolean("job-summary", true)?,
        };

        Ok(GithubContext {
            actions: var("GITHUB_ACTIONS").as_deref() == Some("true"),
            api_url: var("GITHUB_API_URL")
                .unwrap_or_else(|| "https://api.github.com".to_owned())
                .trim_end_matches('/')
                .to_owned(),
            server_url: var("GITHUB_SERVER_URL")
                .unwrap_or_else(|| "https://github.com".to_owned())
                .trim_end_matches('/')
                .to_owned(),
            repository,
            sha,
            job_sha,
            event_name,
            run_id: var("GITHUB_RUN_ID"),
            run_attempt: var("GITHUB_RUN_ATTEMPT"),
            job: var("GITHUB_JOB"),
            workflow: var("GITHUB_WORKFLOW"),
            step_summary: var("GITHUB_STEP_SUMMARY").map(PathBuf::from),
            output: var("GITHUB_OUTPUT").map(PathBuf::from),
            credentials,
            settings,
            warnings,
        })
    }

    /// The workflow run's page: `{server}/{owner}/{repo}/actions/runs/{run_id}`.
    pub fn run_url(&self) -> Option<String> {
        let repository = self.repository.as_ref()?;
        let run_id = self.run_id.as_ref()?;
        Some(format!(
            "{}/{repository}/actions/runs/{run_id}",
            self.server_url
        ))
    }
}

/// `pull_request.head.sha` from the event payload file.
fn pull_request_head(path: Option<String>) -> Result<String, String> {
    let path = path.ok_or("GITHUB_EVENT_PATH is not set")?;
    let text = std::fs::read_to_string(&path).map_err(|e| format!("reading {path}: {e}"))?;
    let event: Value =
        serde_json::from_str(&text).map_err(|e| format!("{path} is not JSON: {e}"))?;
    event
        .pointer("/pull_request/head/sha")
        .and_then(Value::as_str)
        .filter(|sha| !sha.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| format!("{path} has no pull_request.head.sha"))
}

/// Booleans as the Actions toolkit's `getBooleanInput` accepts them (YAML 1.2 core schema).
pub fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// A PEM key pasted into a secret with literal `\n` sequences instead of line breaks.
fn unescape_pem(key: &str) -> String {
    if key.contains('\n') {
        key.to_owned()
    } else {
        key.replace("\\n", "\n")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashMap;

    use super::*;

    fn context(vars: &[(&str, &str)]) -> Result<GithubContext, ContextError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        GithubContext::from_lookup(&|key| map.get(key).cloned())
    }

    #[test]
    fn input_names_follow_the_runner() {
        assert_eq!(input_variable("github-token"), "INPUT_GITHUB-TOKEN");
        assert_eq!(input_variable("check name"), "INPUT_CHECK_NAME");
        assert_eq!(input_variable("App-Private-Key"), "INPUT_APP-PRIVATE-KEY");
    }

    #[test]
    fn pull_request_events_gate_the_head_commit() {
        let dir = tempfile::tempdir().unwrap();
        let event = dir.path().join("event.json");
        std::fs::write(&event, r#"{"pull_request":{"head":{"sha":"abc123"}}}"#).unwrap();
        let ctx = context(&[
            ("GITHUB_EVENT_NAME", "pull_request"),
            ("GITHUB_SHA", "merge999"),
            ("GITHUB_EVENT_PATH", event.to_str().unwrap()),
        ])
        .unwrap();
        assert_eq!(ctx.sha.as_deref(), Some("abc123"));
        assert!(ctx.warnings.is_empty());

        let push = context(&[("GITHUB_EVENT_NAME", "push"), ("GITHUB_SHA", "push1")]).unwrap();
        assert_eq!(push.sha.as_deref(), Some("push1"));
    }

    #[test]
    fn a_missing_event_file_falls_back_with_a_warning() {
        let ctx = context(&[
            ("GITHUB_EVENT_NAME", "pull_request_target"),
            ("GITHUB_SHA", "merge999"),
            ("GITHUB_EVENT_PATH", "/nonexistent/event.json"),
        ])
        .unwrap();
        assert_eq!(ctx.sha.as_deref(), Some("merge999"));
        assert_eq!(ctx.warnings.len(), 1);
    }

    #[test]
    fn inputs_are_read_as_the_runner_sets_them() {
        let ctx = context(&[
            ("INPUT_GITHUB-TOKEN", " ghs_secret "),
            ("INPUT_CHECK-RUNS", "False"),
            ("INPUT_DEPLOYMENT-ID", "42"),
            ("INPUT_ENVIRONMENT-URL", "https://staging.example.com"),
            ("INPUT_CHECK-NAME", "gate {step}"),
            ("GITHUB_API_URL", "https://ghe.example.com/api/v3/"),
            ("GITHUB_REPOSITORY", "octo/app"),
        ])
        .unwrap();
        assert!(
            matches!(&ctx.credentials, Some(Credentials::Token(t)) if t.expose() == "ghs_secret")
        );
        assert!(!ctx.settings.check_runs);
        assert_eq!(ctx.settings.deployment_id, Some(42));
        assert_eq!(ctx.settings.check_name, "gate {step}");
        assert_eq!(ctx.api_url, "https://ghe.example.com/api/v3");
        assert_eq!(ctx.repository.unwrap().to_string(), "octo/app");
        assert!(!format!("{:?}", ctx.credentials).contains("ghs_secret"));
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(matches!(
            context(&[("INPUT_CHECK-RUNS", "yes")]),
            Err(ContextError::NotBoolean { .. })
        ));
        assert!(matches!(
            context(&[("INPUT_DEPLOYMENT-ID", "latest")]),
            Err(ContextError::BadDeploymentId(_))
        ));
        assert!(matches!(
            context(&[("INPUT_APP-ID", "12")]),
            Err(ContextError::IncompleteApp { .. })
        ));
        assert!(matches!(
            context(&[("GITHUB_REPOSITORY", "nope")]),
            Err(ContextError::BadRepository(_))
        ));
    }

    #[test]
    fn app_keys_with_escaped_newlines_are_restored() {
        let ctx = context(&[
            ("INPUT_APP-ID", "7"),
            (
                "INPUT_APP-PRIVATE-KEY",
                "-----BEGIN X-----\\nabc\\n-----END X-----",
            ),
        ])
        .unwrap();
        match ctx.credentials {
            Some(Credentials::App { private_key, .. }) => {
                assert_eq!(
                    private_key.expose(),
                    "-----BEGIN X-----\nabc\n-----END X-----"
                );
            }
            other => panic!("expected App credentials, got {other:?}"),
        }
    }
}
