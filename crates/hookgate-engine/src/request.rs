//! Sending one webhook request: timeouts, retries with backoff and `Retry-After`, fail-fast
//! status codes, a size cap on response bodies and redirects only to http(s).
//!
//! Webhook requests carry an `Idempotency-Key`. A failure that may pass is retried: no
//! connection, 5xx, 429, `retryStatusCodes`. A request that may have reached the service (its
//! connection broke or timed out after it was sent) is sent again only when its method is
//! idempotent or the webhook says the service handles repeats (`idempotent: true`); Spinnaker's
//! webhook stage re-sends only a GET then. GitHub's dispatches do not go through here: they have
//! no idempotency key, and the GitHub port sends them (`crate::github`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::backoff::{Backoff, parse_retry_after};
use crate::outbound::{GuardedResolver, OutboundPolicy, refusal_in};

/// Largest response body kept; the rest is dropped (a status or verdict is never that large).
pub const BODY_LIMIT: usize = 1024 * 1024;

/// A request, fully rendered. Its URL, header values and body may hold secrets (a token in a
/// header, a secret webhook URL such as Slack's), so `Debug` shows only the method, the URL's
/// origin, the header names and the body's length.
#[derive(Clone)]
pub struct HttpRequest {
    /// The method.
    pub method: reqwest::Method,
    /// The URL.
    pub url: String,
    /// Header names and values.
    pub headers: Vec<(String, String)>,
    /// The body, if any.
    pub body: Option<String>,
}

impl std::fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let origin = reqwest::Url::parse(&self.url)
            .map(|url| url.origin().ascii_serialization())
            .unwrap_or_else(|_| "(not a URL)".to_owned());
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("origin", &origin)
            .field("headers", &header_names(&self.headers))
            .field("body_len", &self.body.as_ref().map(String::len))
            .finish_non_exhaustive()
    }
}

/// The names of `headers`, for `Debug` output that must not show their values.
pub(crate) fn header_names(headers: &[(String, String)]) -> Vec<&str> {
    headers.iter().map(|(name, _)| name.as_str()).collect()
}

/// An answer, with its body read (up to [`BODY_LIMIT`]).
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
    /// Whether the body was longer than the limit and cut.
    pub truncated: bool,
    /// The final URL, after redirects.
    pub url: String,
}

impl HttpResponse {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON, when it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The body as text (lossy), for messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body's first line(s), short enough for a message, and a note when the body was cut
    /// at [`BODY_LIMIT`] (which also explains why it is not JSON).
    pub fn excerpt(&self) -> String {
        let start = excerpt(&self.text(), 200);
        if self.truncated {
            format!("{start} (the answer was longer than {BODY_LIMIT} bytes and was cut there)")
        } else {
            start
        }
    }
}

#[cfg(test)]
impl HttpResponse {
    /// An answer as if `url` had sent it, for tests.
    pub(crate) fn answered(status: u16, headers: &[(&str, &str)], body: &str, url: &str) -> Self {
        HttpResponse {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.as_bytes().to_vec(),
            truncated: false,
            url: url.to_owned(),
        }
    }
}

/// `text` with every byte but ASCII letters, digits and those in `keep` written as `%XX`.
pub fn percent_encode(text: &str, keep: &[u8]) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || keep.contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Cuts `text` to at most `max` characters on one line.
pub fn excerpt(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let flat = flat.trim();
    if flat.chars().count() <= max {
        flat.to_owned()
    } else {
        let cut: String = flat.chars().take(max).collect();
        format!("{cut}…")
    }
}

/// Why a single attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The request is malformed (a bad URL, header name or value); retrying cannot help.
    #[error("{0}")]
    Invalid(String),
    /// No connection was made; the server has not seen the request.
    #[error("cannot connect to {url}: {reason}")]
    Connect {
        /// The URL.
        url: String,
        /// The cause.
        reason: String,
    },
    /// The connection broke or timed out after the request may have been sent.
    #[error("no answer from {url}: {reason}")]
    Transport {
        /// The URL.
        url: String,
        /// The cause.
        reason: String,
    },
}

/// Why a request with retries left was not sent again.
const NOT_RESENT: &str = "; not sent again: it may have reached the service, and its method is not idempotent (set `idempotent: true` on the webhook if the service handles a repeat, for example by its `Idempotency-Key` header)";

/// Why a request failed for good.
#[derive(Debug, thiserror::Error)]
pub enum RequestFailure {
    /// The request could not be sent or answered.
    #[error("{error}{}{}", attempts_note(*.attempts), if *.not_resent { NOT_RESENT } else { "" })]
    Send {
        /// The last attempt's error.
        error: SendError,
        /// How many attempts were made.
        attempts: u32,
        /// Whether retries were left but the request was not sent again, since it may have
        /// reached the service.
        not_resent: bool,
    },
    /// The server answered with a status that is not a success.
    #[error("HTTP {status} from {method} {url}{}{}", attempts_note(*.attempts), body_note(.body_excerpt))]
    Status {
        /// The method.
        method: String,
        /// The URL.
        url: String,
        /// The status.
        status: u16,
        /// Whether the status is in `failFastStatusCodes`.
        fail_fast: bool,
        /// The start of the body.
        body_excerpt: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last answer.
        response: Box<HttpResponse>,
    },
}

fn attempts_note(attempts: u32) -> String {
    if attempts > 1 {
        format!(" (after {attempts} attempts)")
    } else {
        String::new()
    }
}

fn body_note(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

/// How a request is retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub retry_count: u32,
    /// Further statuses that are retried.
    pub retry_status_codes: Vec<u16>,
    /// Statuses that end at once.
    pub fail_fast_status_codes: Vec<u16>,
    /// Delays between attempts.
    pub backoff: Backoff,
    /// Whether a request that may have reached the service (its connection broke or timed out
    /// after it was sent) may be sent again: its method is idempotent, or the webhook says the
    /// service handles repeats (`idempotent: true`).
    pub resend_after_sent: bool,
}

/// Whether `method` is idempotent (RFC 9110, section 9.2.2): sending it twice does what sending
/// it once does.
pub fn idempotent_method(method: &reqwest::Method) -> bool {
    use reqwest::Method;
    [
        Method::GET,
        Method::HEAD,
        Method::PUT,
        Method::DELETE,
        Method::OPTIONS,
    ]
    .contains(method)
}

/// Connect and read timeouts of webhook requests.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Time to connect.
    pub connect: Duration,
    /// Time to wait for each read of the answer.
    pub read: Duration,
}

impl Default for Timeouts {
    /// Spinnaker's webhook stage's: 15 s to connect, 20 s for each read.
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(15),
            read: Duration::from_secs(20),
        }
    }
}

/// Sends requests; one per run, shared by all steps.
#[derive(Debug, Clone)]
pub struct HttpSender {
    client: reqwest::Client,
    outbound: Option<Arc<OutboundPolicy>>,
}

impl HttpSender {
    /// A sender with the given timeouts; redirects are followed (at most 10) only to http(s).
    pub fn new(timeouts: Timeouts) -> Result<Self, String> {
        Self::guarded(timeouts, None)
    }

    /// Like [`new`](Self::new), and when `outbound` is given every address reached (after
    /// name resolution, and on each redirect) must pass it.
    pub fn guarded(
        timeouts: Timeouts,
        outbound: Option<Arc<OutboundPolicy>>,
    ) -> Result<Self, String> {
        let redirect_policy = outbound.clone();
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            let scheme = attempt.url().scheme();
            if scheme != "http" && scheme != "https" {
                let message = format!("redirect to a `{scheme}:` URL refused");
                attempt.error(message)
            } else if attempt.previous().len() >= 10 {
                attempt.error("more than 10 redirects")
            } else if let Some(Err(refused)) =
                redirect_policy.as_ref().map(|p| p.check_url(attempt.url()))
            {
                attempt.error(refused)
            } else {
                attempt.follow()
            }
        });
        let mut builder = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .read_timeout(timeouts.read)
            .redirect(redirects)
            .user_agent(concat!("hookgate/", env!("CARGO_PKG_VERSION")));
        if let Some(policy) = &outbound {
            builder = builder
                .dns_resolver(Arc::new(GuardedResolver(policy.clone())))
                // A proxy would resolve names where the policy cannot see them.
                .no_proxy();
        }
        let client = builder
            .build()
            .map_err(|err| format!("cannot set up the HTTP client: {err}"))?;
        Ok(HttpSender { client, outbound })
    }

    /// Sends `request` once.
    pub async fn send_once(&self, request: &HttpRequest) -> Result<HttpResponse, SendError> {
        let url = reqwest::Url::parse(&request.url).map_err(|err| {
            SendError::Invalid(format!("`{}` is not a valid URL: {err}", request.url))
        })?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(SendError::Invalid(format!(
                "`{}` is not an http(s) URL",
                request.url
            )));
        }
        if let Some(Err(refused)) = self.outbound.as_ref().map(|p| p.check_url(&url)) {
            return Err(SendError::Invalid(refused.0));
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &request.headers {
            let header_name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| SendError::Invalid(format!("`{name}` is not a valid header name")))?;
            let header_value = HeaderValue::from_str(value).map_err(|_| {
                SendError::Invalid(format!(
                    "the value of header `{name}` has characters a header cannot carry"
                ))
            })?;
            headers.append(header_name, header_value);
        }
        let mut builder = self
            .client
            .request(request.method.clone(), url)
            .headers(headers);
        if let Some(body) = &request.body {
            builder = builder.body(body.clone());
        }
        let mut response = builder
            .send()
            .await
            .map_err(|err| classify(&request.url, &err))?;
        let status = response.status().as_u16();
        let final_url = response.url().to_string();
        let response_headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut body = Vec::new();
        let mut truncated = false;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = BODY_LIMIT - body.len();
                    if chunk.len() > room {
                        body.extend_from_slice(&chunk[..room]);
                        truncated = true;
                        break;
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(err) => {
                    return Err(SendError::Transport {
                        url: request.url.clone(),
                        reason: error_chain(&err),
                    });
                }
            }
        }
        Ok(HttpResponse {
            status,
            headers: response_headers,
            body,
            truncated,
            url: final_url,
        })
    }

    /// Sends `request` until it succeeds or `policy` says stop. `on_retry` hears why and how
    /// long the wait is before each retry.
    pub async fn send(
        &self,
        request: &HttpRequest,
        policy: &RetryPolicy,
        on_retry: &(dyn Fn(String) + Send + Sync),
    ) -> Result<HttpResponse, RequestFailure> {
        let attempts_allowed = policy.retry_count.saturating_add(1);
        let mut attempt: u32 = 0;
        let mut retries: u32 = 0;
        loop {
            attempt += 1;
            let result = self.send_once(request).await;
            let (retry_reason, retry_after) = match result {
                Ok(response) if response.is_success() => return Ok(response),
                Ok(response) => {
                    let status = response.status;
                    let fail_fast = policy.fail_fast_status_codes.contains(&status);
                    let retry_after = response
                        .header("retry-after")
                        .and_then(|v| parse_retry_after(v, SystemTime::now()));
                    let may_retry = (status >= 500
                        || status == 429
                        || policy.retry_status_codes.contains(&status))
                        && retries < policy.retry_count;
                    if fail_fast || !may_retry {
                        return Err(RequestFailure::Status {
                            method: request.method.to_string(),
                            url: request.url.clone(),
                            status,
                            fail_fast,
                            body_excerpt: response.excerpt(),
                            attempts: attempt,
                            response: Box::new(response),
                        });
                    }
                    (format!("HTTP {status}"), retry_after)
                }
                Err(error) => {
                    let retriable = match &error {
                        SendError::Invalid(_) => false,
                        SendError::Connect { .. } => true,
                        SendError::Transport { .. } => policy.resend_after_sent,
                    };
                    if !retriable || retries >= policy.retry_count {
                        let not_resent = !retriable
                            && retries < policy.retry_count
                            && matches!(error, SendError::Transport { .. });
                        return Err(RequestFailure::Send {
                            error,
                            attempts: attempt,
                            not_resent,
                        });
                    }
                    (error.to_string(), None)
                }
            };
            let delay = retry_after.unwrap_or_else(|| policy.backoff.delay(retries));
            retries += 1;
            let shown = humantime::format_duration(Duration::from_millis(
                u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            ));
            on_retry(format!(
                "attempt {attempt} of {attempts_allowed} failed ({retry_reason}); retrying in {shown}"
            ));
            tokio::time::sleep(delay).await;
        }
    }
}

fn classify(url: &str, err: &reqwest::Error) -> SendError {
    // The outbound policy's refusal will not pass: it is said as it is, and not retried.
    if let Some(refused) = refusal_in(err) {
        return SendError::Invalid(refused.0);
    }
    // reqwest's own top line repeats the URL the message already names; its causes say why.
    let reason = match std::error::Error::source(err) {
        Some(cause) if !err.is_builder() && !err.is_redirect() => error_chain(cause),
        _ => error_chain(err),
    };
    if err.is_builder() || err.is_redirect() {
        SendError::Invalid(format!("cannot send to {url}: {reason}"))
    } else if err.is_connect() {
        SendError::Connect {
            url: url.to_owned(),
            reason,
        }
    } else {
        SendError::Transport {
            url: url.to_owned(),
            reason,
        }
    }
}

/// An error and its causes on one line (reqwest's own message is often only "error sending
/// request").
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn excerpts_are_flat_and_short() {
        assert_eq!(excerpt("a\nb", 10), "a b");
        assert_eq!(excerpt("abcdef", 3), "abc…");
    }

    fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> HttpResponse {
        HttpResponse::answered(
            status,
            headers,
            body,
            "https://api.example/repos/o/r/dispatches",
        )
    }

    #[test]
    fn an_excerpt_says_when_the_answer_was_cut() {
        let mut response = answer(200, &[], "{\"partial\": ");
        assert_eq!(response.excerpt(), "{\"partial\":");
        response.truncated = true;
        assert!(
            response.excerpt().ends_with("was cut there)"),
            "{}",
            response.excerpt()
        );
    }

    #[test]
    fn debug_output_leaves_out_secret_parts_of_a_request() {
        let request = HttpRequest {
            method: reqwest::Method::POST,
            url: "https://hooks.example/services/T0/B0/url-s3cret?token=query-s3cret".to_owned(),
            headers: vec![(
                "Authorization".to_owned(),
                "Bearer header-s3cret".to_owned(),
            )],
            body: Some(r#"{"key":"body-s3cret"}"#.to_owned()),
        };
        let debug = format!("{request:?}");
        assert!(debug.contains("https://hooks.example"), "{debug}");
        assert!(debug.contains("Authorization"), "{debug}");
        assert!(!debug.contains("s3cret"), "{debug}");
    }

    #[test]
    fn a_non_http_url_is_refused_before_sending() {
        let sender = HttpSender::new(Timeouts::default()).unwrap();
        let request = HttpRequest {
            method: reqwest::Method::GET,
            url: "file:///etc/passwd".to_owned(),
            headers: Vec::new(),
            body: None,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let err = runtime.block_on(sender.send_once(&request)).unwrap_err();
        assert!(matches!(err, SendError::Invalid(_)), "{err}");
    }
}
