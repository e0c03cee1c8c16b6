//! `hookgate action`: the container action's entry point. The runner hands the action's inputs
//! over as `INPUT_*` variables; this turns them into the arguments of `run`, `validate`, `plan`
//! or `callback` and runs that command. Inputs about GitHub reporting (`github-token`,
//! `check-runs`, `deployment-id`, ...) are read where they are used, by the GitHub crate.
//!
//! Arguments are built as values, never as a command line, so secrets pass no parser that could
//! echo them in an error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use hookgate_github::context::{input, parse_bool};

use crate::cmd::{Redacted, callback, plan, run, string_map, validate};

/// Arguments of `hookgate action` (none: everything comes from `INPUT_*` variables).
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs the command named by the `command` input.
pub async fn run(_args: Args) -> anyhow::Result<ExitCode> {
    let file = PathBuf::from(input("deployment-file").unwrap_or_else(|| "deploy.yml".to_owned()));
    match input("command").as_deref().unwrap_or("run") {
        "validate" => {
            // The names of the `secrets` input, when it is set: validate warns about the
            // difference from the secrets the file uses.
            let secret_names = secrets_input()?.map(|secrets| secrets.into_keys().collect());
            validate::run(validate::Args { file, secret_names }).await
        }
        "plan" => {
            let (target, phase) = target_and_phase()?;
            plan::run(plan::Args {
                target,
                phase,
                file,
                format: plan::Format::Text,
            })
            .await
        }
        "run" => run::run(run_args(file).await?).await,
        "callback" => callback::run(callback_args()?).await,
        other => bail!("the `command` input is `{other}`: use run, validate, plan or callback"),
    }
}

fn target_and_phase() -> anyhow::Result<(String, hookgate_config::Phase)> {
    let target = required("target")?;
    let phase = required("phase")?
        .parse()
        .map_err(|err: String| anyhow::anyhow!("the `phase` input: {err}"))?;
    Ok((target, phase))
}

fn required(name: &str) -> anyhow::Result<String> {
    input(name).with_context(|| format!("the `{name}` input is required for this command"))
}

async fn run_args(file: PathBuf) -> anyhow::Result<run::Args> {
    let (target, phase) = target_and_phase()?;
    let context = match input("context") {
        Some(text) => string_map::parse(&text, "the `context` input")?
            .into_iter()
            .collect(),
        None => Vec::new(),
    };
    let armory = match input("armory") {
        Some(text) => string_map::parse(&text, "the `armory` input")?
            .into_iter()
            .collect(),
        None => Vec::new(),
    };
    let secrets = secrets_input()?
        .unwrap_or_default()
        .into_iter()
        .map(|(key, value)| (key, Redacted(value)))
        .collect();
    let relay = input("relay-url");
    let relay_token = input("relay-token").map(Redacted);
    if relay.is_some() && relay_token.is_none() && !flag("use-oidc")? {
        bail!(
            "the relay needs a credential: set the `relay-token` input, or `use-oidc: true` with `permissions: id-token: write`"
        );
    }
    let timeout = match input("timeout") {
        Some(text) => Some(
            hookgate_config::model::parse_duration(&text)
                .map_err(|err| anyhow::anyhow!("the `timeout` input: {err}"))?,
        ),
        None => None,
    };
    Ok(run::Args {
        target,
        phase,
        file,
        context,
        armory,
        secrets,
        secrets_file: None,
        relay,
        relay_token,
        timeout,
        retry_backoff: Duration::from_secs(1),
    })
}

/// The `secrets` input, parsed, when it is set.
fn secrets_input() -> anyhow::Result<Option<indexmap::IndexMap<String, String>>> {
    input("secrets")
        .map(|text| string_map::parse(&text, "the `secrets` input"))
        .transpose()
}

fn callback_args() -> anyhow::Result<callback::Args> {
    let progress = input("progress");
    let success = match (input("success"), &progress) {
        (Some(_), Some(_)) => bail!("give the `success` input or the `progress` input, not both"),
        (None, Some(_)) => None,
        (None, None) => bail!(
            "the `success` input is required for this command (or `progress`, to report progress)"
        ),
        (Some(text), None) => match parse_bool(&text) {
            Some(success) => Some(success),
            None => bail!("the `success` input is `{text}`: use true or false"),
        },
    };
    let outputs = match input("outputs") {
        Some(text) => string_map::parse(&text, "the `outputs` input")?
            .into_iter()
            .collect(),
        None => Vec::new(),
    };
    let scheme = match input("hmac-scheme") {
        Some(text) => text
            .parse()
            .map_err(|err| anyhow::anyhow!("the `hmac-scheme` input: {err}"))?,
        None => hookgate_auth::Scheme::Standard,
    };
    Ok(callback::Args {
        url: required("callback-url")?,
        token: input("callback-token").map(Redacted),
        hmac_secret: input("hmac-secret").map(Redacted),
        scheme,
        success,
        message: input("message"),
        progress,
        outputs,
        // Taken from the callback URL, as a relay hands it out.
        slot: None,
        retries: 4,
        retry_delay: Duration::from_secs(1),
        timeout: Duration::from_secs(30),
    })
}

fn flag(name: &str) -> anyhow::Result<bool> {
    match input(name) {
        None => Ok(false),
        Some(text) => parse_bool(&text)
            .with_context(|| format!("the `{name}` input is `{text}`: use true or false")),
    }
}
