//! `hookgate schema`: prints the JSON Schema of the deployment file.

use std::process::ExitCode;

use crate::cmd::EXIT_OK;
use crate::cmd::validate::write_stdout;

/// Arguments of `hookgate schema`.
#[derive(Debug, clap::Args)]
#[command(
    after_long_help = "The schema follows JSON Schema draft 2020-12 and is generated from the same model that \
`hookgate validate` uses. A copy is committed as schema/deploy.schema.json; editors that use yaml-language-server pick it up from a first line \
such as:

  # yaml-language-server: $schema=https://raw.githubusercontent.com/hookgate/hookgate/main/schema/deploy.schema.json

Examples:
  hookgate schema > deploy.schema.json
  hookgate schema | jq '.[\"$defs\"].Webhook.properties | keys'
  cargo run -- schema > schema/deploy.schema.json   # refresh the committed copy"
)]
pub struct Args {}

/// Runs `hookgate schema`.
pub async fn run(_args: Args) -> anyhow::Result<ExitCode> {
    write_stdout(&hookgate_config::schema::json_schema_text());
    Ok(ExitCode::from(EXIT_OK))
}
