//! The relay's HTTP client, as the waiting run uses it: open a slot, then long-poll it. Errors
//! say whether waiting may help: a refused connection, a timeout, 408, 429 or any 5xx (a relay
//! restarting, a proxy answering 502) are [`ClientError::Unavailable`], which the caller retries
//! with backoff; any other 4xx or a malformed answer is [`ClientError::Refused`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reqwest::StatusCode;

use crate::answer::ErrorAnswer;
use crate::delivery::{Delivery, SlotCallbacks};
use crate::slot::{CreateSlot, SlotCreated, SlotId};

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
    read_tokens: Mutex<HashMap<SlotId, String>>,
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
    pub async fn create_slot(&self, slot: &CreateSlot) -> Result<SlotCreated, ClientError> {
        let credential = self.credential.current().await?;
        let response = self
            .http
            .post(format!("{}/v1/slots", self.base_url))
            .bearer_auth(credential)
            .timeout(POLL_GRACE)
            .json(slot)
            .send()
            .await
            .map_err(unreachable)?;
        let created: SlotCreated = read_answer(response, "creating a slot").await?;
        self.read_tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(created.id.clone(), created.read_token.clone());
        Ok(created)
    }

    /// The callbacks of `slot_id` after sequence `after`, waiting up to `wait` for the first;
    /// empty when the wait ends with none. Slots this client created are read with their read
    /// token, others with the client's credential (a relay token).
    pub async fn wait(
        &self,
        slot_id: &SlotId,
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
        let answer: SlotCallbacks = read_answer(response, "reading a slot").await?;
        Ok(answer.callbacks)
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
