//! `hookgate healthcheck`: asks a relay's `/healthz` and exits 0 when it answers 2xx. The
//! container image has no shell or curl, so its HEALTHCHECK runs this.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

/// Arguments of `hookgate healthcheck`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The relay's health URL. Defaults to `/healthz` on the port of `HOOKGATE_LISTEN`.
    #[arg(long)]
    url: Option<String>,
    /// How long to wait for the answer.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

/// Runs `hookgate healthcheck`.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let url = match args.url {
        Some(url) => url,
        None => default_url(std::env::var("HOOKGATE_LISTEN").ok().as_deref()),
    };
    let client = reqwest::Client::builder()
        .timeout(args.timeout)
        .build()
        .context("cannot build the HTTP client")?;
    let response = client
        .get(&url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    if response.status().is_success() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("unhealthy: GET {url} answered {}", response.status());
        Ok(ExitCode::FAILURE)
    }
}

/// `http://127.0.0.1:PORT/healthz` for a listen address such as `0.0.0.0:8080`.
fn default_url(listen: Option<&str>) -> String {
    let port = listen
        .and_then(|addr| addr.rsplit_once(':'))
        .map(|(_, port)| port)
        .filter(|port| port.parse::<u16>().is_ok())
        .unwrap_or("8080");
    format!("http://127.0.0.1:{port}/healthz")
}

#[cfg(test)]
mod tests {
    use super::default_url;

    #[test]
    fn default_url_follows_the_listen_port() {
        assert_eq!(
            default_url(Some("0.0.0.0:9000")),
            "http://127.0.0.1:9000/healthz"
        );
        assert_eq!(
            default_url(Some("[::]:7000")),
            "http://127.0.0.1:7000/healthz"
        );
        assert_eq!(
            default_url(Some("garbage")),
            "http://127.0.0.1:8080/healthz"
        );
        assert_eq!(default_url(None), "http://127.0.0.1:8080/healthz");
    }
}
