//! `hookgate relay`: serves the relay that receives callbacks for waiting runs. Every flag can
//! also be set with a `HOOKGATE_*` variable (lists separated by commas); secrets are never echoed
//! by `--help` or in logs. Stops gracefully on SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use hookgate_relay::RelayConfig;
use hookgate_relay::config::DEFAULT_STORE;
use hookgate_relay::oidc::{GITHUB_ISSUER, OidcConfig};

use super::Redacted;

/// How logs are written to standard error.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Arguments of `hookgate relay`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The address to listen on.
    #[arg(long, env = "HOOKGATE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,

    /// The URL the outside world reaches this relay at; callback URLs start with it.
    /// Default: http:// and the listening address.
    #[arg(long, env = "HOOKGATE_PUBLIC_URL")]
    public_url: Option<String>,

    /// Where slots and callbacks are kept: sqlite:PATH, sqlite::memory: (throw-away) or
    /// postgres://... (several replicas on one database).
    #[arg(long, env = "HOOKGATE_STORE", default_value = DEFAULT_STORE)]
    store: String,

    /// A secret that allows creating slots (`Authorization: Bearer <token>`); repeat to
    /// accept several while rotating.
    #[arg(
        long = "relay-token",
        env = "HOOKGATE_RELAY_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    relay_tokens: Vec<Redacted>,

    /// The key slot tokens are signed with (at least 32 bytes). Default: generated once and
    /// kept in the store, shared by every replica on one database.
    #[arg(long, env = "HOOKGATE_SIGNING_KEY", hide_env_values = true)]
    signing_key: Option<Redacted>,

    /// The OIDC issuer whose tokens may create slots (GitHub Enterprise Server has its own).
    #[arg(long, env = "HOOKGATE_OIDC_ISSUER", default_value = GITHUB_ISSUER)]
    oidc_issuer: String,

    /// Where the issuer's signing keys are. Default: {issuer}/.well-known/jwks.
    #[arg(long, env = "HOOKGATE_OIDC_JWKS_URL")]
    oidc_jwks_url: Option<String>,

    /// The audience OIDC tokens must carry. Default: the public URL.
    #[arg(long, env = "HOOKGATE_OIDC_AUDIENCE")]
    oidc_audience: Option<String>,

    /// A repository (owner/name) whose workflows may create slots with their OIDC token.
    #[arg(
        long = "allow-repository",
        env = "HOOKGATE_ALLOW_REPOSITORIES",
        value_delimiter = ','
    )]
    allow_repositories: Vec<String>,

    /// An owner (user or organization) whose repositories' workflows may create slots with
    /// their OIDC token.
    #[arg(
        long = "allow-owner",
        env = "HOOKGATE_ALLOW_OWNERS",
        value_delimiter = ','
    )]
    allow_owners: Vec<String>,

    /// The largest callback body taken (bytes, or with KiB/MiB).
    #[arg(long, env = "HOOKGATE_MAX_BODY", default_value = "64KiB", value_parser = parse_size)]
    max_body: usize,

    /// The most callbacks one slot keeps.
    #[arg(long, env = "HOOKGATE_MAX_CALLBACKS_PER_SLOT", default_value_t = 100)]
    max_callbacks_per_slot: u64,

    /// The furthest a slot's deadline may be from its creation.
    #[arg(long, env = "HOOKGATE_MAX_SLOT_LIFETIME", default_value = "24h", value_parser = humantime::parse_duration)]
    max_slot_lifetime: Duration,

    /// How long slots and their callbacks are kept after the deadline.
    #[arg(long, env = "HOOKGATE_RETENTION", default_value = "24h", value_parser = humantime::parse_duration)]
    retention: Duration,

    /// The longest a long poll is held.
    #[arg(long, env = "HOOKGATE_MAX_WAIT", default_value = "60s", value_parser = humantime::parse_duration)]
    max_wait: Duration,

    /// How long shutdown waits for requests in flight.
    #[arg(long, env = "HOOKGATE_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    shutdown_timeout: Duration,

    /// The GitHub App's id: with --github-app-key and --github-webhook-secret, the relay
    /// answers the App's deployment protection rule at POST /github/webhook.
    #[arg(
        long,
        env = "HOOKGATE_GITHUB_APP_ID",
        help_heading = "GitHub App (deployment protection rule)"
    )]
    github_app_id: Option<String>,

    /// The App's private key: the path of its PEM file (or the PEM text itself).
    #[arg(
        long,
        env = "HOOKGATE_GITHUB_APP_KEY",
        hide_env_values = true,
        help_heading = "GitHub App (deployment protection rule)"
    )]
    github_app_key: Option<Redacted>,

    /// The App's webhook secret, which GitHub signs its deliveries with.
    #[arg(
        long,
        env = "HOOKGATE_GITHUB_WEBHOOK_SECRET",
        hide_env_values = true,
        help_heading = "GitHub App (deployment protection rule)"
    )]
    github_webhook_secret: Option<Redacted>,

    /// GitHub's REST API (GitHub Enterprise Server: https://HOST/api/v3).
    #[arg(
        long,
        env = "HOOKGATE_GITHUB_API_URL",
        default_value = "https://api.github.com",
        help_heading = "GitHub App (deployment protection rule)"
    )]
    github_api_url: String,

    /// The server's gates configuration (YAML): environment → target, secret grants,
    /// allowed outbound hosts, the deployment file's path, the gates' timeout.
    #[arg(
        long,
        env = "HOOKGATE_GATES_CONFIG",
        help_heading = "GitHub App (deployment protection rule)"
    )]
    gates_config: Option<std::path::PathBuf>,

    /// A YAML file of secret values (NAME: value) for the gates; HOOKGATE_SECRET_<NAME>
    /// variables add to it.
    #[arg(
        long,
        env = "HOOKGATE_GATE_SECRETS",
        help_heading = "GitHub App (deployment protection rule)"
    )]
    gate_secrets: Option<std::path::PathBuf>,

    /// How long a replica's hold on a gate lasts; another replica takes a gate over this long
    /// after its holder died.
    #[arg(long, env = "HOOKGATE_GATE_LEASE", default_value = "30s", value_parser = humantime::parse_duration, help_heading = "GitHub App (deployment protection rule)")]
    gate_lease: Duration,

    /// How often open gates are looked for (a new event is taken at once).
    #[arg(long, env = "HOOKGATE_GATE_CLAIM_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration, help_heading = "GitHub App (deployment protection rule)")]
    gate_claim_interval: Duration,

    /// The least time between two status reports of one gate.
    #[arg(long, env = "HOOKGATE_GATE_REPORT_INTERVAL", default_value = "60s", value_parser = humantime::parse_duration, help_heading = "GitHub App (deployment protection rule)")]
    gate_report_interval: Duration,

    /// How logs are written (filter them with HOOKGATE_LOG, e.g. `info` or `hookgate_relay=debug`).
    #[arg(long, env = "HOOKGATE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// Runs `hookgate relay`.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    init_logs(args.log_format);
    let config = match config(&args) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: {err}");
            return Ok(ExitCode::from(super::EXIT_USAGE));
        }
    };
    let app_config = match app_config(&args) {
        Ok(app_config) => app_config,
        Err(err) => {
            eprintln!("error: {err}");
            return Ok(ExitCode::from(super::EXIT_USAGE));
        }
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let Some(app_config) = app_config else {
        hookgate_relay::run(config, listener, shutdown_signal())
            .await
            .context("the relay failed")?;
        return Ok(ExitCode::SUCCESS);
    };
    let store = hookgate_relay::store::open(&config.store)
        .await
        .context("cannot open the store")?;
    let app = hookgate_app::App::open(app_config, &config.store)
        .await
        .context("cannot start the GitHub App")?;
    hookgate_relay::serve_with(config, store, listener, shutdown_signal(), |slots| {
        app.extension(slots)
    })
    .await
    .context("the relay failed")?;
    Ok(ExitCode::SUCCESS)
}

/// The GitHub App's settings, when its three settings are given.
fn app_config(args: &Args) -> anyhow::Result<Option<hookgate_app::AppConfig>> {
    let (id, key, secret) = match (
        &args.github_app_id,
        &args.github_app_key,
        &args.github_webhook_secret,
    ) {
        (None, None, None) => return Ok(None),
        (Some(id), Some(key), Some(secret)) => (id, key, secret),
        _ => anyhow::bail!(
            "the GitHub App needs all three of --github-app-id, --github-app-key and --github-webhook-secret"
        ),
    };
    let pem = if key.0.trim_start().starts_with("-----BEGIN") {
        key.0.clone()
    } else {
        std::fs::read_to_string(key.0.trim())
            .with_context(|| format!("cannot read --github-app-key {}", key.0.trim()))?
    };
    let webhook_secret = hookgate_auth::github::Secret::new(secret.0.trim())
        .map_err(|err| anyhow::anyhow!("--github-webhook-secret: {err}"))?;
    let identity = hookgate_app::AppIdentity {
        app_id: id.trim().to_owned(),
        private_key: hookgate_github::context::Secret::new(pem),
        api_url: args.github_api_url.trim_end_matches('/').to_owned(),
    };
    // The key is checked now, so a wrong one is a usage error and not a failure at the
    // first event.
    let rest = hookgate_app::github::RepositoryApi::shared_client(&identity)
        .map_err(|err| anyhow::anyhow!("--github-api-url: {err}"))?;
    hookgate_app::github::RepositoryApi::new(&identity, &rest, "check/key")
        .map_err(|err| anyhow::anyhow!("--github-app-key: {err}"))?;
    let settings = hookgate_app::GateSettings::load(
        args.gates_config.as_deref(),
        args.gate_secrets.as_deref(),
        std::env::vars(),
    )
    .map_err(|err| anyhow::anyhow!("{err}"))?;
    if args.gate_claim_interval * 3 > args.gate_lease {
        anyhow::bail!(
            "--gate-claim-interval ({}) must be at most a third of --gate-lease ({}): leases are renewed at that interval",
            humantime::format_duration(args.gate_claim_interval),
            humantime::format_duration(args.gate_lease)
        );
    }
    let mut config = hookgate_app::AppConfig::new(identity, webhook_secret);
    config.settings = settings;
    config.lease = args.gate_lease.max(Duration::from_secs(1));
    config.claim_interval = args.gate_claim_interval.max(Duration::from_millis(50));
    config.report_interval = args.gate_report_interval;
    Ok(Some(config))
}

fn config(args: &Args) -> anyhow::Result<RelayConfig> {
    if let Some(url) = &args.public_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        anyhow::bail!("--public-url must start with http:// or https://, got {url:?}");
    }
    // Without --public-url the relay names itself after the address it is bound to (known only
    // once bound when the port is 0).
    let known_url = args
        .public_url
        .clone()
        .or_else(|| (args.listen.port() != 0).then(|| format!("http://{}", args.listen)));
    let relay_tokens: Vec<String> = args
        .relay_tokens
        .iter()
        .map(|token| token.0.trim().to_owned())
        .filter(|token| !token.is_empty())
        .collect();
    if let Some(short) = relay_tokens.iter().find(|token| token.len() < 16) {
        anyhow::bail!(
            "a relay token is {} characters long; use at least 16 random characters",
            short.len()
        );
    }
    let oidc = if args.allow_repositories.is_empty() && args.allow_owners.is_empty() {
        None
    } else {
        let issuer = args.oidc_issuer.trim_end_matches('/').to_owned();
        let Some(audience) = args.oidc_audience.clone().or_else(|| known_url.clone()) else {
            anyhow::bail!("OIDC needs an audience: give --oidc-audience or --public-url");
        };
        Some(OidcConfig {
            jwks_url: args
                .oidc_jwks_url
                .clone()
                .unwrap_or_else(|| format!("{issuer}/.well-known/jwks")),
            issuer,
            audience,
            allowed_repositories: args.allow_repositories.clone(),
            allowed_owners: args.allow_owners.clone(),
        })
    };
    if relay_tokens.is_empty() && oidc.is_none() && args.github_app_id.is_none() {
        anyhow::bail!(
            "nobody could create slots: give --relay-token, or --allow-repository/--allow-owner \
             for GitHub Actions OIDC tokens"
        );
    }
    let signing_key = args
        .signing_key
        .as_ref()
        .map(|key| key.0.as_bytes().to_vec());
    if signing_key.as_ref().is_some_and(|key| key.len() < 32) {
        anyhow::bail!("--signing-key must be at least 32 bytes");
    }
    // Waiting runs take an empty answer sooner than this for a relay that lies, and pause.
    if args.max_wait < Duration::from_secs(1) {
        anyhow::bail!(
            "--max-wait must be at least 1s: a long poll answered sooner with nothing makes the waiting runs pause before asking again"
        );
    }
    let mut config = RelayConfig::new(args.store.clone());
    config.public_url = known_url;
    config.relay_tokens = relay_tokens;
    config.signing_key = signing_key;
    config.oidc = oidc;
    config.max_body = args.max_body;
    config.max_callbacks_per_slot = args.max_callbacks_per_slot.max(1);
    config.max_slot_lifetime = args.max_slot_lifetime;
    config.retention = args.retention;
    config.max_wait = args.max_wait;
    config.shutdown_timeout = args.shutdown_timeout;
    Ok(config)
}

/// Parses `65536`, `64KiB`, `64k`, `1MiB`, `1m`.
fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: usize = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. 65536, 64KiB, 1MiB)"))?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        _ => return Err(format!("unknown size unit in {text:?} (use KiB or MiB)")),
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is too large"))
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HOOKGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    // A subscriber already set (by a test harness) keeps its place.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("64k"), Ok(65536));
        assert_eq!(parse_size("1MiB"), Ok(1024 * 1024));
        assert!(parse_size("big").is_err());
        assert!(parse_size("1GiB").is_err());
    }
}
