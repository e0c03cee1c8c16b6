//! `hookgate relay`.

use std::process::ExitCode;

/// Arguments of `hookgate relay`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `hookgate relay`.
pub async fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`hookgate relay` is not available in this build")
}
