//! `hookgate validate`.

use std::process::ExitCode;

/// Arguments of `hookgate validate`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `hookgate validate`.
pub async fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`hookgate validate` is not available in this build")
}
