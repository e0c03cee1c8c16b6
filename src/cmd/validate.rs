//! `hookgate validate`: loads a deployment file and reports every problem in it, with places,
//! to the terminal and, inside GitHub Actions, as annotations on the file.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use hookgate_config::{Diagnostics, Loaded};

use crate::cmd::{EXIT_OK, EXIT_USAGE};

/// Arguments of `hookgate validate`.
#[derive(Debug, clap::Args)]
#[command(
    after_long_help = "The file is Armory CD-as-a-Service's deploy.yml with hookgate's extensions. Parts hookgate acts \
on (webhooks, runWebhook, constraints) are strict: a misspelt key is an error with a \"did you \
mean\". Parts that belong to Armory alone (manifests, analysis, trafficManagement, ...) are \
accepted as they are.

All problems of the file are reported in one run, each with the source line, a caret and a hint. \
Inside GitHub Actions (GITHUB_ACTIONS=true) each one is also written as an ::error annotation.

Exit status: 0 when the file is valid (warnings may be printed), 2 when it is not.

Examples:
  hookgate validate
  hookgate validate --file examples/hookgate-extensions.yml
  hookgate validate --secret-names tests_token,callback_secret"
)]
pub struct Args {
    /// The deployment file.
    #[arg(long, short = 'f', value_name = "PATH", default_value = "deploy.yml")]
    pub file: PathBuf,
    /// The names of the secrets the run is given (comma-separated): a warning for each the file
    /// uses that is not among them, and for each of them the file never uses.
    #[arg(long, value_name = "NAME,...", value_delimiter = ',')]
    pub secret_names: Option<Vec<String>>,
}

/// Runs `hookgate validate`.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Some(loaded) = load_or_report(&args.file) else {
        return Ok(ExitCode::from(EXIT_USAGE));
    };
    if let Some(names) = &args.secret_names {
        let warnings = loaded.check_secrets(names.iter().map(String::as_str));
        if !warnings.is_empty() {
            report(&warnings);
        }
    }
    let file = &loaded.file;
    write_stdout(&format!(
        "{} is valid: {} {}, {} {}, {} {}\n",
        loaded.source.name,
        file.targets.len(),
        plural(file.targets.len(), "target", "targets"),
        file.strategies.len(),
        plural(file.strategies.len(), "strategy", "strategies"),
        file.webhooks.len(),
        plural(file.webhooks.len(), "webhook", "webhooks"),
    ));
    Ok(ExitCode::from(EXIT_OK))
}

/// Loads the deployment file, printing its warnings; on errors prints them all and returns
/// nothing. Diagnostics go to stderr, GitHub annotations (inside Actions) to stdout.
pub(crate) fn load_or_report(path: &std::path::Path) -> Option<Loaded> {
    match hookgate_config::load(path) {
        Ok(loaded) => {
            if !loaded.warnings.is_empty() {
                report(&loaded.warnings);
            }
            Some(loaded)
        }
        Err(diagnostics) => {
            report(&diagnostics);
            None
        }
    }
}

fn report(diagnostics: &Diagnostics) {
    if std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true") {
        write_stdout(&diagnostics.github_annotations());
    }
    eprintln!("{diagnostics}");
}

/// Writes to stdout, ignoring a closed pipe (`hookgate ... | head`).
pub(crate) fn write_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}
