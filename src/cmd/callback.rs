//! `hookgate callback`.

use std::process::ExitCode;

/// Arguments of `hookgate callback`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `hookgate callback`.
pub async fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`hookgate callback` is not available in this build")
}
