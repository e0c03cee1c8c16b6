//! The relay's HTTP client, as the waiting run uses it: open a slot, then long-poll it. Errors
//! say whether waiting may help: a refused connection, a timeout, 408, 429 or any 5xx (a relay
//! restarting, a proxy answering 502) are [`ClientError::Unavailable`], which the caller retries
//! with backoff; any other 4xx or a malformed answer is [`ClientError::Refused`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use reqwest::StatusCode;
use serde::Deserialize;

use crate::store::CallbackAuth;

/// How much longer than the long poll itself a request may take before it is abandoned.
const POLL_GRACE: Duration = Duration::from_secs(30);

/// Why a relay call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The relay could not be reached or answered with a temporary failure; retrying may help.
    #[error("relay unavailable: {0}")]
    Unavailable(String),
    /// The relay refused the request or answered something unreadable; retrying will not help.
    #[error("relay refused: {0}")]
    Refused(String),
}

impl ClientError {
    /// Whether retrying may help.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// What a new slot should be.
#[derive(Debug, Clone)]
pub struct NewSlot {
    /// How callbacks authenticate.
    pub auth: CallbackAuth,
    /// After this instant the slot takes no callbacks.
    pub deadline: SystemTime,
    /// A label for the relay's logs; never secret.
    pub label: String,
}

/// A slot the relay opened.
#[derive(Clone)]
pub struct CreatedSlot {
    /// Its id.
    pub id: String,
    /// Where callbacks go.
    pub callback_url: String,
    /// The deadline granted (the relay may shorten the one asked for).
    pub deadline: SystemTime,
    /// For bearer slots, the token callbacks must carry. Secret.
    pub token: Option<String>,
    /// The token that reads the slot. Secret.
    pub read_token: String,
}

impl std::fmt::Debug for CreatedSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedSlot")
            .field("id", &self.id)
            .field("callback_url", &self.callback_url)
            .field("deadline", &self.deadline)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("read_token", &"***")
            .finish()
    }
}

/// One stored callback, as delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Its sequence number in the slot, from 1.
    pub sequence: u64,
    /// When the relay stored it.
    pub received_at: SystemTime,
    /// The request headers (lower-case names, in order; `Authorization` is never stored).
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SlotCreatedAnswer {
    id: String,
    callback_url: String,
    deadline: String,
    token: Option<String>,
    read_token: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeliveredAnswer {
    sequence: u64,
    received_at: String,
    headers: Vec<(String, String)>,
    body_base64: String,
}

#[derive(Deserialize)]
struct SlotCallbacksAnswer {
    callbacks: Vec<DeliveredAnswer>,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    code: String,
    detail: String,
}

/// Fetches a credential for creating a slot, such as a job's GitHub Actions OIDC token.
pub type FetchCredential =
    Arc<dyn Fn() -> futures::future::BoxFuture<'static, Result<String, String>> + Send + Sync>;

/// What authenticates a client when it creates slots.
#[derive(Clone)]
pub enum Credential {
    /// A fixed relay token.
    Token(String),
    /// A credential fetched afresh for every slot: an OIDC token lasts minutes, while a run that
    /// opens a slot after a long earlier step may be hours old.
    Fetched(FetchCredential),
}

impl Credential {
    async fn current(&self) -> Result<String, ClientError> {
        match self {
            Credential::Token(token) => Ok(token.clone()),
            Credential::Fetched(fetch) => fetch().await.map_err(|why| {
                ClientError::Refused(format!("cannot get a credential for the relay: {why}"))
            }),
        }
    }
}

/// A client of one relay.
pub struct RelayClient {
    http: reqwest::Client,
    base_url: String,
    credential: Credential,
    read_tokens: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for RelayClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayClient")
            .field("base_url", &self.base_url)
            .field("credential", &"***")
            .finish_non_exhaustive()
    }
}

impl RelayClient {
    /// A client of the relay at `base_url` that creates slots with `credential` (a relay token,
    /// or the job's GitHub Actions OIDC token).
    pub fn new(base_url: &str, credential: &str) -> Result<Self, ClientError> {
        Self::with_credential(base_url, Credential::Token(credential.to_owned()))
    }

    /// A client of the relay at `base_url` that authenticates with `credential`.
    pub fn with_credential(base_url: &str, credential: Credential) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("hookgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| ClientError::Refused(format!("cannot build the HTTP client: {err}")))?;
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            credential,
            read_tokens: Mutex::new(HashMap::new()),
        })
    }

    /// The relay's base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Opens a slot.
    pub async fn create_slot(&self, slot: &NewSlot) -> Result<CreatedSlot, ClientError> {
        let body = serde_json::json!({
            "auth": slot.auth,
            "deadline": humantime::format_rfc3339_millis(slot.deadline).to_string(),
            "label": slot.label,
        });
        let credential = self.credential.current().await?;
        let response = self
            .http
            .post(format!("{}/v1/slots", self.base_url))
            .bearer_auth(credential)
            .timeout(POLL_GRACE)
            .json(&body)
            .send()
            .await
            .map_err(unreachable)?;
        let answer: SlotCreatedAnswer = read_answer(response, "creating a slot").await?;
        let deadline = humantime::parse_rfc3339_weak(&answer.deadline).map_err(|err| {
            ClientError::Refused(format!("the relay answered an unreadable deadline: {err}"))
        })?;
        self.read_tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(answer.id.clone(), answer.read_token.clone());
        Ok(CreatedSlot {
            id: answer.id,
            callback_url: answer.callback_url,
            deadline,
            token: answer.token,
            read_token: answer.read_token,
        })
    }

    /// The callbacks of `slot_id` after sequence `after`, waiting up to `wait` for the first;
    /// empty when the wait ends with none. Slots this client created are read with their read
    /// token, others with the client's credential (a relay token).
    pub async fn wait(
        &self,
        slot_id: &str,
        after: u64,
        wait: Duration,
    ) -> Result<Vec<Delivery>, ClientError> {
        let read_token = self
            .read_tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(slot_id)
            .cloned();
        let token = match read_token {
            Some(token) => token,
            None => self.credential.current().await?,
        };
        let response = self
            .http
            .get(format!(
                "{}/v1/slots/{slot_id}?after={after}&wait={}ms",
                self.base_url,
                wait.as_millis()
            ))
            .bearer_auth(token)
            .timeout(wait + POLL_GRACE)
            .send()
            .await
            .map_err(unreachable)?;
        let answer: SlotCallbacksAnswer = read_answer(response, "reading a slot").await?;
        let engine = base64::engine::general_purpose::STANDARD;
        answer
            .callbacks
            .into_iter()
            .map(|callback| {
                Ok(Delivery {
                    sequence: callback.sequence,
                    received_at: humantime::parse_rfc3339_weak(&callback.received_at).map_err(
                        |err| ClientError::Refused(format!("unreadable receivedAt: {err}")),
                    )?,
                    headers: callback.headers,
                    body: engine.decode(callback.body_base64).map_err(|err| {
                        ClientError::Refused(format!("unreadable bodyBase64: {err}"))
                    })?,
                })
            })
            .collect()
    }
}

fn unreachable(err: reqwest::Error) -> ClientError {
    // Connection refused, reset, DNS, timeouts: all may pass.
    ClientError::Unavailable(format!("{err}"))
}

async fn read_answer<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
    what: &str,
) -> Result<T, ClientError> {
    let status = response.status();
    let body = response.bytes().await.map_err(unreachable)?;
    if status.is_success() {
        return serde_json::from_slice(&body).map_err(|err| {
            ClientError::Refused(format!("{what}: the relay's answer is unreadable: {err}"))
        });
    }
    let reason = match serde_json::from_slice::<ErrorAnswer>(&body) {
        Ok(answer) => format!("{what}: {status} {}: {}", answer.code, answer.detail),
        Err(_) => format!("{what}: {status}"),
    };
    if status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
    {
        Err(ClientError::Unavailable(reason))
    } else {
        Err(ClientError::Refused(reason))
    }
}
