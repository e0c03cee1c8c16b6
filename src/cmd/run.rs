//! `hookgate run`: loads the deployment file, plans one target and phase, and hands the plan to
//! the engine with its settings, a relay for callbacks, GitHub's API for dispatches and the
//! reporters. Exit codes: 0 every step passed or was skipped, 1 a gate failed, timed out or was
//! cancelled, 2 a usage or configuration error.

mod terminal;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use hookgate_config::Phase;
use hookgate_engine::backoff::Backoff;
use hookgate_engine::relay_mailbox::RelayMailbox;
use hookgate_engine::settings::github_values;
use hookgate_engine::{ArmoryValues, Mailbox, Masker, RunSettings, Runner, needs_mailbox};
use hookgate_github::context::Credentials;
use hookgate_protocol::{Credential, FetchCredential};
use hookgate_relay::EmbeddedRelay;
use indexmap::IndexMap;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::cmd::{EXIT_GATE_FAILED, EXIT_OK, EXIT_USAGE, Redacted, string_map};

/// Arguments of `hookgate run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The target (environment) whose webhooks run.
    #[arg(long, value_name = "NAME")]
    pub target: String,
    /// Which gates: before-deployment, after-deployment or strategy.
    #[arg(long, value_name = "PHASE", value_parser = parse_phase)]
    pub phase: Phase,
    /// The deployment file.
    #[arg(long, short = 'f', value_name = "PATH", default_value = "deploy.yml")]
    pub file: PathBuf,
    /// A `{{ context.KEY }}` value for every step (a step's own `context` wins). Repeatable.
    #[arg(long = "context", value_name = "KEY=VALUE", value_parser = parse_pair)]
    pub context: Vec<(String, String)>,
    /// An `{{ armory.KEY }}` value Armory took from the cluster: `replicaSetName=NAME` or
    /// `preview.SERVICE=URL`. Repeatable.
    #[arg(long = "armory", value_name = "KEY=VALUE", value_parser = parse_pair)]
    pub armory: Vec<(String, String)>,
    /// A `{{ secrets.KEY }}` value. Masked in all output. Repeatable.
    #[arg(long = "secret", value_name = "KEY=VALUE", value_parser = parse_secret)]
    pub secrets: Vec<(String, Redacted)>,
    /// A JSON or YAML file holding a map of secret names to values.
    #[arg(long, value_name = "PATH")]
    pub secrets_file: Option<PathBuf>,
    /// The relay that receives callbacks (`waitFor: callback`).
    #[arg(long, value_name = "URL", env = "HOOKGATE_RELAY_URL")]
    pub relay: Option<String>,
    /// The token that authenticates this run to the relay.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "HOOKGATE_RELAY_TOKEN",
        hide_env_values = true
    )]
    pub relay_token: Option<Redacted>,
    /// A time limit for the whole run, such as `30m`; steps still running then are `timed_out`.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// The delay before the first retry of a failed request; it doubles with each retry.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "1s")]
    pub retry_backoff: Duration,
}

fn parse_phase(text: &str) -> Result<Phase, String> {
    text.parse()
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    hookgate_config::model::parse_duration(text)
}

/// `KEY=VALUE` of a repeatable option.
pub(crate) fn parse_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.to_owned()))
        }
        _ => Err(format!("`{text}` is not KEY=VALUE")),
    }
}

/// `--secret KEY=VALUE`; the error names the key only, never the value.
fn parse_secret(text: &str) -> Result<(String, Redacted), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), Redacted(value.to_owned())))
        }
        _ => Err("a --secret is not KEY=VALUE".to_owned()),
    }
}

/// Runs `hookgate run`.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let in_actions = std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true");
    // Secrets are registered (and announced to the runner with `::add-mask::`) before anything
    // else is printed.
    let masker = if in_actions {
        Masker::announcing()
    } else {
        Masker::new()
    };
    let mut secrets: IndexMap<String, String> = IndexMap::new();
    if let Some(path) = &args.secrets_file {
        match read_secrets_file(path) {
            Ok(values) => secrets.extend(values),
            Err(err) => return usage_error(&format!("{err:#}")),
        }
    }
    secrets.extend(
        args.secrets
            .iter()
            .map(|(key, value)| (key.clone(), value.0.clone())),
    );
    for value in secrets.values() {
        masker.add(value);
    }
    let github_token = std::env::var("GITHUB_TOKEN").ok().filter(|t| !t.is_empty());
    let relay_token = args.relay_token.as_ref().map(|token| &token.0);
    for value in [github_token.as_ref(), relay_token].into_iter().flatten() {
        masker.add(value);
    }

    // Diagnostics go to stderr, and inside Actions also as annotations on the file; warnings
    // (settings the wait mode ignores) are shown and the run goes on.
    let report = |diagnostics: &hookgate_config::Diagnostics| {
        if in_actions {
            print_stdout(&masker.mask(&diagnostics.github_annotations()));
        }
        eprintln!("{}", masker.mask(&diagnostics.to_string()));
    };
    let loaded = match hookgate_config::load(&args.file) {
        Ok(loaded) => {
            if !loaded.warnings.is_empty() {
                report(&loaded.warnings);
            }
            loaded
        }
        Err(diagnostics) => {
            report(&diagnostics);
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    let secret_warnings = loaded.check_secrets(secrets.keys().map(String::as_str));
    if !secret_warnings.is_empty() {
        report(&secret_warnings);
    }
    let plan = match hookgate_config::plan(&loaded.file, &args.target, args.phase) {
        Ok(plan) => plan,
        Err(err) => return usage_error(&err.to_string()),
    };

    let deployment_id = match (
        std::env::var("GITHUB_RUN_ID"),
        std::env::var("GITHUB_RUN_ATTEMPT"),
    ) {
        (Ok(id), Ok(attempt)) if !id.is_empty() => format!("{id}-{attempt}"),
        _ => uuid::Uuid::new_v4().to_string(),
    };
    let mut armory = ArmoryValues::for_target(&loaded.file, &args.target, deployment_id);
    for (key, value) in &args.armory {
        if let Err(why) = armory.set(key, value.clone()) {
            return usage_error(&format!("--armory {key}=...: {why}"));
        }
    }
    let settings = RunSettings {
        context: args
            .context
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
        secrets,
        armory,
        github: github_values(std::env::vars()),
        run_timeout: args.timeout,
        retry_backoff: Backoff {
            base: args.retry_backoff,
            ..Backoff::default()
        },
        ..RunSettings::default()
    };

    let cancel = CancellationToken::new();
    let mut runner = Runner::new(plan, settings)
        .with_masker(masker.clone())
        .with_cancellation(cancel.clone());
    // GitHub: the `github-token` input or GITHUB_TOKEN, or a GitHub App; in Actions also the
    // reporters (check runs, deployment statuses, job summary, outputs, log groups).
    let github = match hookgate_github::Actions::from_env() {
        Ok(github) => github,
        Err(err) => return usage_error(&masker.mask(&err.to_string())),
    };
    // The `github-token` input is a secret too, like GITHUB_TOKEN above.
    if let Some(Credentials::Token(token)) = &github.context().credentials {
        masker.add(token.expose());
    }
    if let Some(port) = github.github_port() {
        runner = runner.with_github(port);
    }
    for reporter in github.reporters() {
        runner = runner.with_reporter(reporter);
    }
    // An embedded relay runs for as long as this holds it.
    let mut _embedded = None;
    if needs_mailbox(runner.plan()) {
        match open_mailbox(&args, in_actions, &masker).await {
            Ok((mailbox, embedded)) => {
                runner = runner.with_mailbox(mailbox);
                _embedded = embedded;
            }
            Err(err) => return usage_error(&masker.mask(&format!("{err:#}"))),
        }
    }
    if !in_actions {
        runner = runner.with_reporter(Box::new(terminal::TerminalReporter::new()));
    }
    if let Err(err) = runner.check() {
        return usage_error(&masker.mask(&err.to_string()));
    }

    tokio::spawn(cancel_on_signal(cancel));
    let report = match runner.run().await {
        Ok(report) => report,
        Err(err) => return usage_error(&masker.mask(&err.to_string())),
    };
    Ok(ExitCode::from(if report.conclusion.is_passing() {
        EXIT_OK
    } else {
        EXIT_GATE_FAILED
    }))
}

/// The relay for callback steps: the one at `--relay`, or (outside GitHub Actions) one embedded
/// in this process, reachable from this machine only, which is returned to be kept running.
async fn open_mailbox(
    args: &Args,
    in_actions: bool,
    masker: &Masker,
) -> anyhow::Result<(Arc<dyn Mailbox>, Option<EmbeddedRelay>)> {
    let mailbox = match &args.relay {
        Some(url) => {
            let credential = relay_credential(args, url, masker)?;
            (RelayMailbox::new(url, credential)?, None)
        }
        None if in_actions => anyhow::bail!(
            "a step waits for a callback, but no relay is configured: runners take no inbound traffic, so set the `relay-url` input (or --relay URL) to a hookgate relay"
        ),
        None => {
            let relay = EmbeddedRelay::start()
                .await
                .context("cannot start the embedded relay")?;
            let mailbox =
                RelayMailbox::new(relay.url(), Credential::Token(relay.token().to_owned()))?;
            eprintln!(
                "hookgate: callbacks go to an embedded relay at {} (reachable from this machine only; pass --relay URL for a public one)",
                mailbox.url()
            );
            (mailbox, Some(relay))
        }
    };
    Ok((Arc::new(mailbox.0), mailbox.1))
}

/// What authenticates this run to the relay: `--relay-token`, or in GitHub Actions the job's
/// OIDC token for the relay's URL (the workflow needs `permissions: id-token: write`). An OIDC
/// token lasts minutes while a run may last hours, so a fresh one is fetched for every slot.
fn relay_credential(args: &Args, url: &str, masker: &Masker) -> anyhow::Result<Credential> {
    if let Some(token) = args
        .relay_token
        .as_ref()
        .map(|t| t.0.as_str())
        .filter(|t| !t.is_empty())
    {
        return Ok(Credential::Token(token.to_owned()));
    }
    let (Ok(request_url), Ok(request_token)) = (
        std::env::var("ACTIONS_ID_TOKEN_REQUEST_URL"),
        std::env::var("ACTIONS_ID_TOKEN_REQUEST_TOKEN"),
    ) else {
        anyhow::bail!(
            "the relay at {url} needs a credential: pass --relay-token, or in GitHub Actions grant `permissions: id-token: write` so the job's OIDC token is used"
        );
    };
    masker.add(&request_token);
    let mut endpoint =
        reqwest::Url::parse(&request_url).context("ACTIONS_ID_TOKEN_REQUEST_URL is not a URL")?;
    endpoint
        .query_pairs_mut()
        .append_pair("audience", url.trim_end_matches('/'));
    let masker = masker.clone();
    let fetch: FetchCredential = Arc::new(move || {
        let (endpoint, request_token, masker) =
            (endpoint.clone(), request_token.clone(), masker.clone());
        Box::pin(async move {
            let token = fetch_oidc_token(endpoint, &request_token)
                .await
                .map_err(|err| format!("{err:#}"))?;
            masker.add(&token);
            Ok(token)
        })
    });
    Ok(Credential::Fetched(fetch))
}

/// Asks the runner for the job's OIDC token.
async fn fetch_oidc_token(endpoint: reqwest::Url, request_token: &str) -> anyhow::Result<String> {
    let answer = reqwest::Client::new()
        .get(endpoint)
        .bearer_auth(request_token)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .context("cannot get the job's OIDC token")?;
    let status = answer.status();
    if !status.is_success() {
        anyhow::bail!("cannot get the job's OIDC token: HTTP {status}");
    }
    let body: Value = answer
        .json()
        .await
        .context("the OIDC token answer is not JSON")?;
    let token = body
        .get("value")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| anyhow::anyhow!("the OIDC token answer has no `value`"))?
        .to_owned();
    Ok(token)
}

/// Cancels the run on SIGINT or SIGTERM.
async fn cancel_on_signal(cancel: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
    }
    eprintln!("hookgate: cancelling: pending steps end `cancelled`, cancel requests go out");
    cancel.cancel();
}

/// Reads `--secrets-file`: a JSON object or a YAML map of names to scalar values.
fn read_secrets_file(path: &Path) -> anyhow::Result<IndexMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the secrets file {}", path.display()))?;
    string_map::parse(&text, &format!("the secrets file {}", path.display()))
}

fn usage_error(message: &str) -> anyhow::Result<ExitCode> {
    eprintln!("error: {message}");
    Ok(ExitCode::from(EXIT_USAGE))
}

fn print_stdout(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn secret_values_stay_out_of_debug_output_and_parse_errors() {
        let cli = Cli::try_parse_from([
            "run",
            "--target",
            "staging",
            "--phase",
            "before-deployment",
            "--secret",
            "token=s3cret-value",
            "--relay-token",
            "relay-s3cret",
        ])
        .expect("valid arguments");
        let debug = format!("{:?}", cli.args);
        assert!(debug.contains("token"), "{debug}");
        assert!(!debug.contains("s3cret"), "{debug}");

        let error = parse_secret("s3cret-without-a-key").expect_err("no `=`");
        assert!(!error.contains("s3cret"), "{error}");
    }
}
