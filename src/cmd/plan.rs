//! `hookgate plan`.

use std::process::ExitCode;

/// Arguments of `hookgate plan`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `hookgate plan`.
pub async fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`hookgate plan` is not available in this build")
}
