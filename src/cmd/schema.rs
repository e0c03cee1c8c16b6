//! `hookgate schema`.

use std::process::ExitCode;

/// Arguments of `hookgate schema`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `hookgate schema`.
pub async fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`hookgate schema` is not available in this build")
}
