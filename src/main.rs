//! The `hookgate` command line: parses arguments, routes to a command, maps the result to an exit
//! code. Every command's work lives in the library crates; `src/cmd/` only adapts arguments.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

/// jemalloc rather than glibc's malloc: a relay holding thousands of waiting long polls keeps
/// their long-lived allocations next to the short-lived ones of every request and database call,
/// and glibc's heap kept the holes between them resident (see bench/relay-bench).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Turn the webhooks of a deployment file into gates a GitHub workflow waits on.
///
/// hookgate reads an Armory CD-as-a-Service deployment file (deploy.yml), calls the webhooks of
/// one target and phase, waits for each result (a 2xx answer, a polled status URL, or a signed
/// callback through a relay) and reports every result.
#[derive(Debug, Parser)]
#[command(
    name = "hookgate",
    version,
    about,
    long_about,
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a deployment file and report every error with its line and column.
    Validate(cmd::validate::Args),
    /// Show the steps of one target and phase, in the order they run.
    Plan(cmd::plan::Args),
    /// Print the JSON Schema of the deployment file.
    Schema(cmd::schema::Args),
    /// Run the webhooks of one target and phase and wait for their results.
    Run(cmd::run::Args),
    /// Serve the relay that receives callbacks for waiting runs.
    Relay(Box<cmd::relay::Args>),
    /// Send a signed callback to a waiting run (the other side of the loop).
    Callback(cmd::callback::Args),
    /// Run as the GitHub Action: read the `INPUT_*` variables and run the command they name.
    #[command(hide = true)]
    Action(cmd::action::Args),
    /// Exit 0 when a relay answers its health check (the container's HEALTHCHECK).
    Healthcheck(cmd::healthcheck::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(cmd::EXIT_USAGE);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Validate(args) => cmd::validate::run(args).await,
            Command::Plan(args) => cmd::plan::run(args).await,
            Command::Schema(args) => cmd::schema::run(args).await,
            Command::Run(args) => cmd::run::run(args).await,
            Command::Relay(args) => cmd::relay::run(*args).await,
            Command::Callback(args) => cmd::callback::run(args).await,
            Command::Action(args) => cmd::action::run(args).await,
            Command::Healthcheck(args) => cmd::healthcheck::run(args).await,
        }
    });
    // Do not wait for blocked tasks (a stdin reader, a slow reporter) once the command is done.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(cmd::EXIT_USAGE)
        }
    }
}
