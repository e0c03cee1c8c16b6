//! The REST client every GitHub call of this crate goes through: GitHub's headers, JSON bodies,
//! and one retry policy that knows which requests may be sent again.
//!
//! - A rate-limit answer means GitHub did not act on the request, so any request, creating ones
//!   included, is sent again after the wait GitHub asks for (up to [`RetryPolicy::max_wait`]; a
//!   longer wait is given up on). The primary limit is spent when `x-ratelimit-remaining` is 0:
//!   the wait lasts until `x-ratelimit-reset`. A secondary limit is a 403 or 429 with
//!   `Retry-After` (seconds or an HTTP date), or a 429, or a 403 saying "secondary rate limit",
//!   without one: GitHub asks for at least a minute then.
//! - A 5xx answer or a timeout may come after GitHub acted. Only [`Resend::Idempotent`] requests
//!   (GETs, PATCHes of a check run) are sent again, with exponential backoff. Creating requests
//!   (a dispatch, a check run, a deployment) are not: GitHub has no idempotency key for them.
//! - A connection that could not be opened never reached GitHub: every request is retried.
//!
//! The engine's dispatches come here too, through [`crate::port::GithubRest`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hookgate_engine::backoff::parse_retry_after;

use crate::auth::TokenSource;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, USER_AGENT};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// The REST API version hookgate is written against.
pub const API_VERSION: &str = "2022-11-28";
const MEDIA_TYPE: &str = "application/vnd.github+json";

/// Whether a request may be sent again after an answer that may have come after GitHub acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resend {
    /// Sending it twice has the effect of sending it once (GET, PATCH).
    Idempotent,
    /// It creates something: sent again only when GitHub surely did not act on it.
    OnlyIfUnsent,
}

/// How hard to try.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The first backoff after a 5xx or a network error; doubled each time.
    pub base_delay: Duration,
    /// The longest rate-limit wait accepted; longer ones fail the request instead.
    pub max_wait: Duration,
    /// The timeout of one attempt.
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_secs(1),
            max_wait: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// A GitHub API call that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// No token could be had.
    #[error("cannot get a GitHub token: {0}")]
    Token(String),
    /// The request failed before an answer came (connection, timeout, TLS).
    #[error("{method} {path}: {source}")]
    Transport {
        /// The request's method.
        method: Method,
        /// The request's path.
        path: String,
        /// What went wrong.
        #[source]
        source: reqwest::Error,
    },
    /// GitHub answered with an error status.
    #[error("{method} {path}: HTTP {status}: {message}")]
    Status {
        /// The request's method.
        method: Method,
        /// The request's path.
        path: String,
        /// The status.
        status: StatusCode,
        /// GitHub's `message`, or the start of the body.
        message: String,
    },
    /// GitHub asked to wait longer than hookgate is willing to.
    #[error("{method} {path}: rate limited for {wait:?}, longer than the {max:?} hookgate waits")]
    RateLimited {
        /// The request's method.
        method: Method,
        /// The request's path.
        path: String,
        /// The wait GitHub asked for.
        wait: Duration,
        /// The longest accepted wait.
        max: Duration,
    },
    /// A 2xx answer whose body is not the JSON expected.
    #[error("{method} {path}: unexpected answer: {detail}")]
    Unexpected {
        /// The request's method.
        method: Method,
        /// The request's path.
        path: String,
        /// What was wrong with it.
        detail: String,
    },
}

impl ApiError {
    /// The HTTP status GitHub answered with, if it answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Sends requests to one API base URL with GitHub's headers and the retry policy above.
#[derive(Debug, Clone)]
pub struct RestClient {
    http: reqwest::Client,
    base_url: String,
    policy: RetryPolicy,
}

impl RestClient {
    /// A client for the API at `base_url` (such as `https://api.github.com`).
    pub fn new(base_url: &str, policy: RetryPolicy) -> Result<Self, ApiError> {
        let http = reqwest::Client::builder()
            .timeout(policy.request_timeout)
            .build()
            .map_err(ApiError::Client)?;
        Ok(RestClient {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            policy,
        })
    }

    /// The same client, accepting rate-limit waits up to `max_wait`.
    pub fn with_max_wait(mut self, max_wait: Duration) -> Self {
        self.policy.max_wait = max_wait;
        self
    }

    /// Sends `method path` with `body` (JSON) authenticated by `bearer`, retrying as the module
    /// explains, and returns the answer's JSON (`Null` for an empty body).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        bearer: &str,
        body: Option<&Value>,
        resend: Resend,
    ) -> Result<Value, ApiError> {
        self.exchange(method, path, bearer, body, resend, &|_| {})
            .await
            .map(|(_, body)| body)
    }

    /// Like [`send`](Self::send), and also returns the status; `on_wait` hears each wait for a
    /// rate limit before the request is sent again.
    pub async fn exchange(
        &self,
        method: Method,
        path: &str,
        bearer: &str,
        body: Option<&Value>,
        resend: Resend,
        on_wait: &(dyn Fn(String) + Send + Sync),
    ) -> Result<(StatusCode, Value), ApiError> {
        let url = format!("{}{path}", self.base_url);
        let mut attempt = 1;
        loop {
            let mut request = self
                .http
                .request(method.clone(), &url)
                .header(ACCEPT, MEDIA_TYPE)
                .header("X-GitHub-Api-Version", API_VERSION)
                .header(USER_AGENT, concat!("hookgate/", env!("CARGO_PKG_VERSION")))
                .header(AUTHORIZATION, format!("Bearer {bearer}"));
            if let Some(body) = body {
                request = request.json(body);
            }
            let last = attempt >= self.policy.max_attempts;
            let backoff = self.policy.base_delay * 2u32.saturating_pow(attempt - 1);
            attempt += 1;

            // A body that breaks off counts as a connection that broke after sending.
            let received = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    read_capped(response)
                        .await
                        .map(|text| (status, headers, text))
                }
                Err(source) => Err(source),
            };
            let (status, headers, text) = match received {
                Ok(received) => received,
                Err(source) => {
                    let unsent = source.is_connect();
                    if !last && (unsent || resend == Resend::Idempotent) {
                        tracing::debug!(%method, path, error = %source, "retrying GitHub request");
                        tokio::time::sleep(backoff).await;
                        continue;
                    }
                    return Err(ApiError::Transport {
                        method,
                        path: path.to_owned(),
                        source,
                    });
                }
            };
            let text = match text {
                Capped::Whole(text) => text,
                // An error page cut short still says what it says; an answer cut short does not.
                Capped::Cut(text) if !status.is_success() => text,
                Capped::Cut(_) => {
                    return Err(ApiError::Unexpected {
                        method,
                        path: path.to_owned(),
                        detail: format!("an answer longer than {ANSWER_LIMIT} bytes"),
                    });
                }
            };
            if status.is_success() {
                if text.trim().is_empty() {
                    return Ok((status, Value::Null));
                }
                return serde_json::from_str(&text)
                    .map(|body| (status, body))
                    .map_err(|e| ApiError::Unexpected {
                        method,
                        path: path.to_owned(),
                        detail: format!("not JSON: {e}"),
                    });
            }
            if let Some(wait) = rate_limit_wait(status, &headers, &text, SystemTime::now()) {
                if wait > self.policy.max_wait {
                    return Err(ApiError::RateLimited {
                        method,
                        path: path.to_owned(),
                        wait,
                        max: self.policy.max_wait,
                    });
                }
                if !last {
                    tracing::info!(%method, path, ?wait, "GitHub rate limit: waiting");
                    on_wait(format!(
                        "{method} {path} answered HTTP {}: rate limited; sending again in {}",
                        status.as_u16(),
                        humantime::format_duration(Duration::from_secs(wait.as_secs().max(1)))
                    ));
                    tokio::time::sleep(wait).await;
                    continue;
                }
            } else if status.is_server_error() && resend == Resend::Idempotent && !last {
                tracing::debug!(%method, path, %status, "retrying GitHub request");
                tokio::time::sleep(backoff).await;
                continue;
            }
            return Err(ApiError::Status {
                method,
                path: path.to_owned(),
                status,
                message: error_message(&text),
            });
        }
    }
}

/// How long GitHub asks to wait before the request may be sent again, if the answer is a
/// rate limit (primary or secondary).
fn rate_limit_wait(
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
    now: SystemTime,
) -> Option<Duration> {
    if status != StatusCode::FORBIDDEN && status != StatusCode::TOO_MANY_REQUESTS {
        return None;
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(wait) = header("retry-after").and_then(|v| parse_retry_after(v, now)) {
        return Some(wait);
    }
    let spent = header("x-ratelimit-remaining") == Some("0");
    if spent
        && let Some(reset) = header("x-ratelimit-reset").and_then(|v| v.trim().parse::<u64>().ok())
    {
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        // One second more: the reset time is rounded down.
        return Some(Duration::from_secs(reset.saturating_sub(now) + 1));
    }
    // GitHub's advice for a limit that names no wait: at least a minute.
    if spent
        || status == StatusCode::TOO_MANY_REQUESTS
        || body.to_ascii_lowercase().contains("secondary rate limit")
    {
        return Some(Duration::from_secs(60));
    }
    None
}

/// GitHub's `message` from an error body, or the start of the body; at most 300 characters.
fn error_message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| body.to_owned())
        .chars()
        .take(300)
        .collect()
}

/// The most of an answer read: GitHub's largest answers hookgate reads (a 1 MB file's contents
/// in base64, a page of jobs) are well under it, and a stand-in that sends more costs no more.
pub const ANSWER_LIMIT: usize = 8 * 1024 * 1024;

/// An answer's text, read up to [`ANSWER_LIMIT`].
enum Capped {
    /// All of it.
    Whole(String),
    /// Its first [`ANSWER_LIMIT`] bytes; the rest was not read.
    Cut(String),
}

/// The answer's text up to [`ANSWER_LIMIT`], or the error that broke it off.
async fn read_capped(mut response: reqwest::Response) -> Result<Capped, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = ANSWER_LIMIT - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok(Capped::Cut(String::from_utf8_lossy(&body).into_owned()));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Capped::Whole(String::from_utf8_lossy(&body).into_owned()))
}

/// Stops a reporter once GitHub refused it for want of a permission (401, 403 that is not a
/// rate limit, 404) or no token could be had, so one missing permission is one warning and not
/// one per event.
#[derive(Debug, Default)]
pub struct PermissionLatch(AtomicBool);

impl PermissionLatch {
    /// Whether GitHub has refused already: send nothing more.
    pub fn refused(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Warns about `error` (`what` failed); a refusal also names `permission` and closes the latch.
    pub fn warn(&self, what: &str, error: &ApiError, permission: &str) {
        let refused = matches!(
            error.status(),
            Some(StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND)
        );
        let message = if refused {
            format!(
                "{error}; the token needs `permissions: {permission}` (pull requests from forks get a read-only token), so nothing more is sent"
            )
        } else if matches!(error, ApiError::Token(_)) {
            // Without a token nothing can be sent.
            format!("{error}; nothing more is sent")
        } else {
            crate::workflow_commands::reporting_warning(what, error);
            return;
        };
        self.0.store(true, Ordering::Relaxed);
        crate::workflow_commands::reporting_warning(what, &message);
    }
}

/// A [`RestClient`] with a token source: what the reporters use.
#[derive(Clone)]
pub struct GithubClient {
    rest: RestClient,
    tokens: Arc<dyn TokenSource>,
}

impl GithubClient {
    /// Authenticates every request with a token from `tokens`.
    pub fn new(rest: RestClient, tokens: Arc<dyn TokenSource>) -> Self {
        GithubClient { rest, tokens }
    }

    /// Sends one request; see [`RestClient::send`].
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        resend: Resend,
    ) -> Result<Value, ApiError> {
        let token = self.tokens.token().await.map_err(ApiError::Token)?;
        self.rest.send(method, path, &token, body, resend).await
    }

    /// Sends one request; see [`RestClient::exchange`].
    pub async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        resend: Resend,
        on_wait: &(dyn Fn(String) + Send + Sync),
    ) -> Result<(StatusCode, Value), ApiError> {
        let token = self.tokens.token().await.map_err(ApiError::Token)?;
        self.rest
            .exchange(method, path, &token, body, resend, on_wait)
            .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use reqwest::header::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn rate_limits_are_recognised() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let forbidden = StatusCode::FORBIDDEN;
        assert_eq!(
            rate_limit_wait(forbidden, &headers(&[("retry-after", "7")]), "", now),
            Some(Duration::from_secs(7))
        );
        // Retry-After as an HTTP date: 1970-01-01T00:16:50Z is 10 s after `now`.
        assert_eq!(
            rate_limit_wait(
                StatusCode::TOO_MANY_REQUESTS,
                &headers(&[("retry-after", "Thu, 01 Jan 1970 00:16:50 GMT")]),
                "",
                now
            ),
            Some(Duration::from_secs(10))
        );
        // A spent primary limit without a reset time: a minute.
        assert_eq!(
            rate_limit_wait(
                forbidden,
                &headers(&[("x-ratelimit-remaining", "0")]),
                "",
                now
            ),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            rate_limit_wait(
                forbidden,
                &headers(&[
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", "1030")
                ]),
                "",
                now
            ),
            Some(Duration::from_secs(31))
        );
        assert_eq!(
            rate_limit_wait(
                forbidden,
                &headers(&[]),
                r#"{"message":"You have exceeded a secondary rate limit"}"#,
                now
            ),
            Some(Duration::from_secs(60))
        );
        // A plain 403 is a permission problem, not a reason to wait.
        assert_eq!(
            rate_limit_wait(
                forbidden,
                &headers(&[("x-ratelimit-remaining", "4000")]),
                r#"{"message":"Resource not accessible by integration"}"#,
                now
            ),
            None
        );
        assert_eq!(
            rate_limit_wait(
                StatusCode::BAD_GATEWAY,
                &headers(&[("retry-after", "1")]),
                "",
                now
            ),
            None
        );
    }

    #[test]
    fn error_messages_come_from_the_body() {
        assert_eq!(error_message(r#"{"message":"Not Found"}"#), "Not Found");
        assert_eq!(error_message("<html>bad gateway"), "<html>bad gateway");
    }

    #[test]
    fn error_messages_are_cut() {
        let long = format!(r#"{{"message":"{}"}}"#, "x".repeat(10_000));
        assert_eq!(error_message(&long).chars().count(), 300);
    }

    #[tokio::test]
    async fn an_answer_over_the_limit_is_refused_without_being_kept() {
        use tokio::io::AsyncWriteExt as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buffer = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let read = tokio::io::AsyncReadExt::read(&mut stream, &mut buffer)
                    .await
                    .unwrap();
                if read == 0 {
                    return;
                }
                request.extend_from_slice(&buffer[..read]);
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                ANSWER_LIMIT * 4
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let chunk = vec![b' '; 64 * 1024];
            for _ in 0..(ANSWER_LIMIT * 4 / chunk.len()) {
                if stream.write_all(&chunk).await.is_err() {
                    return;
                }
            }
        });
        let client = RestClient::new(&format!("http://{address}"), RetryPolicy::default()).unwrap();
        let err = client
            .send(Method::GET, "/huge", "token", None, Resend::OnlyIfUnsent)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("longer than"), "{err}");
    }
}
