//! `hookgate callback`: the other side of the loop. The service that was called sends its
//! verdict, `{"success": ..., "mdMessage": ...}`, or progress while it works,
//! `{"final": false, "mdMessage": ...}`, to the callback URL it was given (with `outputs` for the
//! gate's later steps), with the slot's bearer token or an HMAC signature (Standard Webhooks or
//! GitHub's form).
//!
//! Delivery is at least once: connection errors, 5xx and 429 are retried with backoff, and a
//! Standard Webhooks delivery keeps one `webhook-id` across its retries (each with a fresh
//! timestamp and signature) so the relay stores it once. Any other 4xx is final: the relay's
//! `{code, detail}` answer is printed and the command exits 1. The token and secret are never
//! printed; they can come from the environment so they stay off the command line.

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use hookgate_auth::{Scheme, standard};
use hookgate_engine::backoff::parse_retry_after;
use hookgate_protocol::{CallbackKind, Verdict};
use reqwest::StatusCode;
use reqwest::header::{
    AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER,
};

use super::{EXIT_USAGE, Redacted};

/// The environment variable read for the bearer token when `--token` is not given.
pub const TOKEN_ENV: &str = "HOOKGATE_CALLBACK_TOKEN";
/// The environment variable read for the HMAC secret when `--hmac-secret` is not given.
pub const SECRET_ENV: &str = "HOOKGATE_HMAC_SECRET";

/// The longest wait between attempts, whatever the backoff or `Retry-After` says.
const MAX_DELAY: Duration = Duration::from_secs(30);
/// How much of a refusal's body is shown when it is not the relay's JSON.
const MAX_SHOWN_BODY: usize = 500;

/// Arguments of `hookgate callback`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The callback URL the run handed out (`{{ callback.uri }}`).
    #[arg(long, env = "HOOKGATE_CALLBACK_URL")]
    pub url: String,
    /// The slot's bearer token (`{{ callback.token }}`). Prefer the HOOKGATE_CALLBACK_TOKEN
    /// environment variable, which is read when neither --token nor --hmac-secret is given.
    #[arg(long, value_name = "TOKEN", conflicts_with = "hmac_secret")]
    pub token: Option<Redacted>,
    /// The shared HMAC secret to sign with. Prefer the HOOKGATE_HMAC_SECRET environment
    /// variable, which is read when neither --token nor --hmac-secret is given.
    #[arg(long, value_name = "SECRET")]
    pub hmac_secret: Option<Redacted>,
    /// The HMAC scheme: `standard` (Standard Webhooks) or `github` (X-Hub-Signature-256).
    #[arg(long, default_value = "standard", value_parser = parse_scheme)]
    pub scheme: Scheme,
    /// The verdict: `true` lets the waiting gate pass, `false` fails it.
    #[arg(
        long,
        action = clap::ArgAction::Set,
        value_name = "true|false",
        required_unless_present = "progress",
        conflicts_with = "progress"
    )]
    pub success: Option<bool>,
    /// A Markdown message shown with the result (`mdMessage`).
    #[arg(long, value_name = "TEXT", conflicts_with = "progress")]
    pub message: Option<String>,
    /// Instead of a verdict, progress: this Markdown line is shown in the gate's check run and
    /// log, and the gate goes on waiting (`"final": false`).
    #[arg(long, value_name = "TEXT")]
    pub progress: Option<String>,
    /// An output the gate's later steps read as `steps['NAME'].outputs.KEY` (and the action
    /// writes as a step output). Repeatable.
    #[arg(long = "output", value_name = "KEY=VALUE", value_parser = super::run::parse_pair)]
    pub outputs: Vec<(String, String)>,
    /// The slot the verdict is for (`{{ callback.slot }}`), signed into the body so that it
    /// counts for that slot only. By default taken from the URL (`.../v1/callbacks/SLOT`).
    #[arg(long, env = "HOOKGATE_CALLBACK_SLOT", value_name = "ID")]
    pub slot: Option<String>,
    /// How many times a failed attempt (connection error, 5xx, 429) is retried.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub retries: u32,
    /// The wait before the first retry; it doubles with each further retry (at most 30s).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub retry_delay: Duration,
    /// How long one attempt may take.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
}

fn parse_scheme(text: &str) -> Result<Scheme, String> {
    text.parse()
        .map_err(|err: hookgate_auth::UnknownScheme| err.to_string())
}

/// How the callback authenticates.
enum Credentials {
    Bearer(String),
    Hmac { scheme: Scheme, secret: String },
}

impl Credentials {
    /// The command line wins over the environment; in the environment, one of the two.
    fn resolve(args: &Args) -> Result<Self, String> {
        let from_env = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        let (token, secret) = match (&args.token, &args.hmac_secret) {
            (Some(token), None) => (Some(token.0.clone()), None),
            (None, Some(secret)) => (None, Some(secret.0.clone())),
            // clap refuses both; neither means the environment decides.
            _ => (from_env(TOKEN_ENV), from_env(SECRET_ENV)),
        };
        match (token, secret) {
            (Some(token), None) => Ok(Credentials::Bearer(token)),
            (None, Some(secret)) => Ok(Credentials::Hmac {
                scheme: args.scheme,
                secret,
            }),
            (Some(_), Some(_)) => Err(format!(
                "both {TOKEN_ENV} and {SECRET_ENV} are set; pass --token or --hmac-secret to choose"
            )),
            (None, None) => Err(format!(
                "no credentials: give --token (or {TOKEN_ENV}) for a bearer callback, or \
                 --hmac-secret (or {SECRET_ENV}) for a signed one"
            )),
        }
    }

    /// The headers of one attempt. Standard Webhooks signs afresh each time (a fresh
    /// timestamp) under the same message id.
    fn headers(&self, msg_id: &str, body: &[u8]) -> Result<HeaderMap, String> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        match self {
            Credentials::Bearer(token) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", token.trim()))
                    .map_err(|_| "the token contains characters not allowed in a header")?;
                value.set_sensitive(true);
                headers.insert(AUTHORIZATION, value);
            }
            Credentials::Hmac { scheme, secret } => {
                let signed = scheme
                    .sign(secret, msg_id, SystemTime::now(), body)
                    .map_err(|err| format!("--hmac-secret: {err}"))?;
                for (name, value) in signed {
                    let value = HeaderValue::from_str(&value)
                        .map_err(|_| format!("cannot send the `{name}` header"))?;
                    headers.insert(HeaderName::from_static(name), value);
                }
            }
        }
        Ok(headers)
    }
}

/// What one attempt came to.
enum Attempt {
    Delivered(StatusCode),
    Refused {
        status: StatusCode,
        explanation: String,
    },
    Retry {
        reason: String,
        retry_after: Option<Duration>,
    },
}

/// Runs `hookgate callback`.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let credentials = match Credentials::resolve(&args) {
        Ok(credentials) => credentials,
        Err(message) => return Ok(usage(&message)),
    };
    let url = reqwest::Url::parse(&args.url)
        .with_context(|| format!("--url {:?} is not a URL", args.url));
    let url = match url {
        Ok(url) if matches!(url.scheme(), "http" | "https") => url,
        Ok(_) => return Ok(usage("--url must be an http:// or https:// URL")),
        Err(err) => return Ok(usage(&format!("{err:#}"))),
    };
    let (kind, message) = match (args.success, &args.progress) {
        (_, Some(progress)) => (CallbackKind::Progress, Some(progress.clone())),
        (Some(success), None) => (CallbackKind::Final { success }, args.message.clone()),
        // clap requires one of the two.
        (None, None) => return Ok(usage("give --success true|false, or --progress TEXT")),
    };
    let body = Verdict {
        kind,
        message,
        slot: args.slot.clone().or_else(|| slot_of(&url)),
        outputs: args.outputs.iter().cloned().collect(),
    }
    .to_body();
    let msg_id = standard::new_message_id();
    // Refuse an unusable secret before anything is sent.
    if let Err(message) = credentials.headers(&msg_id, &body) {
        return Ok(usage(&message));
    }

    let client = reqwest::Client::builder()
        .timeout(args.timeout)
        .user_agent(concat!("hookgate/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot build the HTTP client")?;

    let attempts = args.retries.saturating_add(1);
    let mut delay = args.retry_delay;
    for attempt in 1..=attempts {
        let headers = match credentials.headers(&msg_id, &body) {
            Ok(headers) => headers,
            Err(message) => return Ok(usage(&message)),
        };
        match send(&client, &url, headers, &body).await {
            Attempt::Delivered(status) => {
                eprintln!("callback delivered: {status} (attempt {attempt} of {attempts})");
                return Ok(ExitCode::SUCCESS);
            }
            Attempt::Refused {
                status,
                explanation,
            } => {
                eprintln!("callback refused: {status}: {explanation}");
                return Ok(ExitCode::FAILURE);
            }
            Attempt::Retry {
                reason,
                retry_after,
            } => {
                if attempt == attempts {
                    eprintln!("callback not delivered after {attempts} attempts: {reason}");
                    return Ok(ExitCode::FAILURE);
                }
                let wait = retry_after.unwrap_or(delay).min(MAX_DELAY);
                eprintln!(
                    "attempt {attempt} of {attempts} failed: {reason}; retrying in {}",
                    humantime::format_duration(wait)
                );
                tokio::time::sleep(wait).await;
                delay = delay.saturating_mul(2).min(MAX_DELAY);
            }
        }
    }
    // `attempts` is at least 1, so the loop always returns.
    Ok(ExitCode::FAILURE)
}

fn usage(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(EXIT_USAGE)
}

async fn send(
    client: &reqwest::Client,
    url: &reqwest::Url,
    headers: HeaderMap,
    body: &[u8],
) -> Attempt {
    let response = match client
        .post(url.clone())
        .headers(headers)
        .body(body.to_vec())
        .send()
        .await
    {
        Ok(response) => response,
        Err(err) => {
            return Attempt::Retry {
                reason: describe_send_error(&err),
                retry_after: None,
            };
        }
    };
    let status = response.status();
    if status.is_success() {
        return Attempt::Delivered(status);
    }
    let retry_after = retry_after(response.headers());
    let text = response.text().await.unwrap_or_default();
    let explanation = explain(&text);
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        Attempt::Retry {
            reason: format!("{status}: {explanation}"),
            retry_after,
        }
    } else {
        Attempt::Refused {
            status,
            explanation,
        }
    }
}

/// The wait a `Retry-After` header asks for: seconds, or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, SystemTime::now())
}

/// The slot a relay callback URL names: `.../v1/callbacks/SLOT` or `.../v1/callbacks/SLOT/callback`.
fn slot_of(url: &reqwest::Url) -> Option<String> {
    let segments: Vec<&str> = url.path_segments()?.filter(|s| !s.is_empty()).collect();
    let at = segments
        .iter()
        .rposition(|segment| *segment == "callbacks")?;
    match segments.get(at + 1..)? {
        [slot] | [slot, "callback"] => slot.parse::<hookgate_protocol::SlotId>().ok(),
        _ => None,
    }
    .map(|slot| slot.to_string())
}

/// The relay's `{code, detail}`, or the start of whatever else was answered.
fn explain(body: &str) -> String {
    if let Ok(error) = serde_json::from_str::<hookgate_protocol::ErrorAnswer>(body) {
        return format!("{} ({})", error.detail, error.code);
    }
    let body = body.trim();
    if body.is_empty() {
        return "no explanation in the answer".to_string();
    }
    let shown: String = body.chars().take(MAX_SHOWN_BODY).collect();
    if shown.len() < body.len() {
        format!("{shown}...")
    } else {
        shown
    }
}

/// The kind of failure and its innermost cause, without the request's headers.
fn describe_send_error(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut cause: &dyn std::error::Error = err;
    while let Some(source) = cause.source() {
        cause = source;
    }
    format!("{kind}: {cause}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explains_relay_errors_and_other_bodies() {
        assert_eq!(
            explain(r#"{"code":"unauthorized","detail":"bad signature"}"#),
            "bad signature (unauthorized)"
        );
        assert_eq!(explain("  "), "no explanation in the answer");
        assert_eq!(explain("Bad Gateway"), "Bad Gateway");
        let long = "x".repeat(MAX_SHOWN_BODY + 10);
        assert_eq!(explain(&long).len(), MAX_SHOWN_BODY + 3);
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_as_a_date() {
        let headers = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(RETRY_AFTER, HeaderValue::from_static(value));
            headers
        };
        assert_eq!(retry_after(&headers("3")), Some(Duration::from_secs(3)));
        assert_eq!(
            retry_after(&headers("Sun, 06 Nov 1994 08:49:37 GMT")),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&headers("soon")), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn secrets_are_not_in_debug_output() {
        assert_eq!(format!("{:?}", Redacted("s3cret".into())), "***");
    }
}
