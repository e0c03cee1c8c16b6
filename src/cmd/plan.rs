//! `hookgate plan`: shows the steps of one target and phase, in the order `hookgate run` would
//! run them, without calling anything.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use hookgate_config::model::{HttpMethod, StatusUrlResolution, WaitFor, Webhook};
use hookgate_config::{Phase, Plan, PlannedStep};

use crate::cmd::validate::{load_or_report, write_stdout};
use crate::cmd::{EXIT_OK, EXIT_USAGE};

/// Arguments of `hookgate plan`.
#[derive(Debug, clap::Args)]
#[command(
    after_long_help = "Each step shows its webhook, the HTTP method and URL template (unrendered: templates are filled \
only when the step runs), or the GitHub repository or workflow it dispatches, how its result is \
known, its time limit and its `if` condition. Steps of a blue/green redirectTrafficAfter run in \
parallel and are marked so. Steps hookgate does not run (setWeight, analysis, manual approval) \
are listed as not handled, with the reason.

Phases: before-deployment (constraints.beforeDeployment), after-deployment \
(constraints.afterDeployment), strategy (canary steps or blue/green redirectTrafficAfter). The \
camelCase spellings beforeDeployment and afterDeployment are accepted too.

Examples:
  hookgate plan --target staging --phase before-deployment
  hookgate plan --file examples/blue-green-security-scan.yml --target prod --phase strategy
  hookgate plan --target staging --phase afterDeployment --format json"
)]
pub struct Args {
    /// The target (environment) to plan.
    #[arg(long, value_name = "NAME")]
    pub target: String,
    /// before-deployment, after-deployment or strategy.
    #[arg(long, value_name = "PHASE")]
    pub phase: Phase,
    /// The deployment file.
    #[arg(long, short = 'f', value_name = "PATH", default_value = "deploy.yml")]
    pub file: PathBuf,
    /// How to print the plan.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Output formats of `hookgate plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// For people.
    Text,
    /// The plan as JSON, for scripts.
    Json,
}

/// Runs `hookgate plan`.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Some(loaded) = load_or_report(&args.file) else {
        return Ok(ExitCode::from(EXIT_USAGE));
    };
    let plan = match hookgate_config::plan(&loaded.file, &args.target, args.phase) {
        Ok(plan) => plan,
        Err(err) => {
            eprintln!("error: {err}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    match args.format {
        Format::Text => write_stdout(&render_text(&plan, &loaded.source.name)),
        Format::Json => {
            let mut text = serde_json::to_string_pretty(&plan)?;
            text.push('\n');
            write_stdout(&text);
        }
    }
    Ok(ExitCode::from(EXIT_OK))
}

/// The plan for people: numbered steps, parallel groups marked, one detail a line.
fn render_text(plan: &Plan, file: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Plan of target `{}`, phase {} ({file})",
        plan.target, plan.phase
    );
    if plan.groups.is_empty() {
        let _ = writeln!(
            out,
            "\nNo steps: target `{}` has nothing to run in this phase.",
            plan.target
        );
        return out;
    }
    for (number, group) in plan.groups.iter().enumerate() {
        let number = number + 1;
        if group.parallel {
            let _ = writeln!(
                out,
                "\n{number}. In parallel ({} steps; all must succeed, the first failure cancels the others):",
                group.steps.len()
            );
            for (index, step) in group.steps.iter().enumerate() {
                let label = format!("{number}{}", letter(index));
                render_step(&mut out, &label, step, "   ");
            }
        } else {
            for step in &group.steps {
                out.push('\n');
                render_step(&mut out, &number.to_string(), step, "");
            }
        }
    }
    out
}

fn letter(index: usize) -> char {
    char::from_u32('a' as u32 + (index % 26) as u32).unwrap_or('?')
}

fn render_step(out: &mut String, label: &str, step: &PlannedStep, indent: &str) {
    match step {
        PlannedStep::Webhook(call) => {
            let webhook = &call.webhook;
            let _ = writeln!(out, "{indent}{label}. {}", call.step_name);
            let detail = |out: &mut String, name: &str, value: &str| {
                let _ = writeln!(out, "{indent}     {name:<8} {value}");
            };
            detail(out, "calls", &callee(webhook));
            if let Some(agent) = webhook.remote_network_agent() {
                detail(
                    out,
                    "network",
                    &format!(
                        "directly from this machine, in place of the Remote Network Agent{agent}"
                    ),
                );
            }
            detail(out, "wait", &wait(call.wait, webhook));
            let timeout = short_duration(call.timeout);
            if webhook.timeout.is_some() {
                detail(out, "timeout", &timeout);
            } else {
                detail(out, "timeout", &format!("{timeout} (default)"));
            }
            if let Some(retries) = webhook.retry_count {
                detail(out, "retries", &retries.to_string());
            }
            if !call.context.is_empty() {
                let context: Vec<String> = call
                    .context
                    .iter()
                    .map(|(k, v)| match v {
                        serde_json::Value::String(s) => format!("{k}={s}"),
                        other => format!("{k}={other}"),
                    })
                    .collect();
                detail(out, "context", &context.join(", "));
            }
            if let Some(condition) = &call.condition {
                detail(out, "if", condition);
            }
        }
        PlannedStep::Pause { duration } => {
            let _ = writeln!(out, "{indent}{label}. pause {}", short_duration(*duration));
        }
        PlannedStep::NotHandled { step, reason } => {
            let _ = writeln!(
                out,
                "{indent}{label}. {step}: not handled by hookgate ({reason})"
            );
        }
    }
}

/// `24h`, `1h 30m`, `45m`, `90s` → `1m 30s`: hours, minutes and seconds, zeros left out.
fn short_duration(duration: std::time::Duration) -> String {
    let secs = duration.as_secs();
    let parts: Vec<String> = [(secs / 3600, "h"), (secs / 60 % 60, "m"), (secs % 60, "s")]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if parts.is_empty() {
        "0s".to_owned()
    } else {
        parts.join(" ")
    }
}

/// What the webhook calls: method and URL template, or the GitHub dispatch.
fn callee(webhook: &Webhook) -> String {
    if let Some(dispatch) = &webhook.repository_dispatch {
        return format!(
            "repository_dispatch to {} (event type `{}`)",
            dispatch.repository, dispatch.event_type
        );
    }
    if let Some(dispatch) = &webhook.workflow_dispatch {
        let repository = dispatch.repository.as_deref().unwrap_or("this repository");
        return format!(
            "workflow_dispatch of {} in {repository} at `{}`",
            dispatch.workflow, dispatch.git_ref
        );
    }
    format!(
        "{} {}",
        webhook.method.unwrap_or(HttpMethod::Post),
        webhook
            .uri_template
            .as_deref()
            .unwrap_or("(no uriTemplate)")
    )
}

/// How the step's result is known, with the settings that matter.
fn wait(mode: WaitFor, webhook: &Webhook) -> String {
    match mode {
        WaitFor::None => "none (a 2xx answer is success)".to_owned(),
        WaitFor::WorkflowRun => "workflowRun (the started run's conclusion)".to_owned(),
        WaitFor::Callback => {
            let callback = webhook.callback.clone().unwrap_or_default();
            match callback.auth {
                hookgate_config::model::CallbackAuthMode::Bearer => {
                    "callback (bearer token)".to_owned()
                }
                hookgate_config::model::CallbackAuthMode::Hmac => {
                    let scheme = match callback.scheme {
                        hookgate_config::model::HmacScheme::Standard => "Standard Webhooks",
                        hookgate_config::model::HmacScheme::Github => {
                            "GitHub's X-Hub-Signature-256"
                        }
                    };
                    format!("callback (HMAC, {scheme})")
                }
            }
        }
        WaitFor::Poll => {
            let poll = webhook.poll.clone().unwrap_or_default();
            let url = match poll.status_url_resolution {
                StatusUrlResolution::GetMethod => "GET on the same URL".to_owned(),
                StatusUrlResolution::LocationHeader => "the Location header".to_owned(),
                StatusUrlResolution::WebhookResponse => format!(
                    "the response at {}",
                    poll.status_url_json_path.as_deref().unwrap_or("?")
                ),
            };
            let status = match &poll.status_json_path {
                Some(path) => format!("status at {path}"),
                None => "a 2xx answer is success".to_owned(),
            };
            format!("poll (status URL from {url}; {status})")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_label_parallel_steps() {
        assert_eq!(letter(0), 'a');
        assert_eq!(letter(2), 'c');
    }

    #[test]
    fn durations_are_short() {
        use std::time::Duration;
        assert_eq!(short_duration(Duration::from_secs(86_400)), "24h");
        assert_eq!(short_duration(Duration::from_secs(5_400)), "1h 30m");
        assert_eq!(short_duration(Duration::from_secs(90)), "1m 30s");
        assert_eq!(short_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn phase_accepts_both_spellings() {
        assert_eq!(
            "afterDeployment".parse::<Phase>(),
            Ok(Phase::AfterDeployment)
        );
        assert_eq!(
            "after-deployment".parse::<Phase>(),
            Ok(Phase::AfterDeployment)
        );
    }
}
