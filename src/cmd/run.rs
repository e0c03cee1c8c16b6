//! `hookgate run`.

use std::process::ExitCode;

/// Arguments of `hookgate run`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `hookgate run`.
pub async fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`hookgate run` is not available in this build")
}
