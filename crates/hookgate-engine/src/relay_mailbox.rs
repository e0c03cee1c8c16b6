//! The engine's [`Mailbox`] over a hookgate relay: a remote one (its URL and a relay token or the
//! job's OIDC token), or one embedded in this process for runs outside GitHub Actions that name
//! no relay. Relay errors keep their class: unreachable or 5xx is `Transient` (the engine retries
//! with backoff), any other refusal `Permanent`.

use std::time::Duration;

use futures::future::BoxFuture;
use hookgate_relay::{CallbackAuth, ClientError, Credential, EmbeddedRelay, NewSlot, RelayClient};

use crate::mailbox::{Mailbox, MailboxError, OpenSlot, ReceivedCallback, SlotAuth, SlotRequest};

/// A [`Mailbox`] backed by a relay.
#[derive(Debug)]
pub struct RelayMailbox {
    client: RelayClient,
    // Kept running for as long as the mailbox is used.
    embedded: Option<EmbeddedRelay>,
}

impl RelayMailbox {
    /// A mailbox on the relay at `url`, creating slots with `credential`.
    pub fn remote(url: &str, credential: Credential) -> Result<Self, MailboxError> {
        Ok(Self {
            client: RelayClient::with_credential(url, credential).map_err(into_mailbox_error)?,
            embedded: None,
        })
    }

    /// A mailbox on a relay started in this process, on 127.0.0.1 and a free port.
    pub async fn embedded() -> Result<Self, MailboxError> {
        let relay = EmbeddedRelay::start().await.map_err(|err| {
            MailboxError::Permanent(format!("cannot start the embedded relay: {err}"))
        })?;
        Ok(Self {
            client: relay.client().map_err(into_mailbox_error)?,
            embedded: Some(relay),
        })
    }

    /// The relay's URL.
    pub fn url(&self) -> &str {
        self.client.base_url()
    }

    /// Whether the relay runs in this process.
    pub fn is_embedded(&self) -> bool {
        self.embedded.is_some()
    }
}

fn into_mailbox_error(err: ClientError) -> MailboxError {
    match err {
        ClientError::Unavailable(reason) => MailboxError::Transient(reason),
        ClientError::Refused(reason) => MailboxError::Permanent(reason),
    }
}

impl Mailbox for RelayMailbox {
    fn open(&self, request: SlotRequest) -> BoxFuture<'_, Result<OpenSlot, MailboxError>> {
        Box::pin(async move {
            let auth = match request.auth {
                SlotAuth::Bearer => CallbackAuth::Bearer,
                SlotAuth::HmacGithub => CallbackAuth::HmacGithub,
                SlotAuth::HmacStandard => CallbackAuth::HmacStandard,
            };
            let slot = self
                .client
                .create_slot(&NewSlot {
                    auth,
                    deadline: request.deadline,
                    label: request.label,
                })
                .await
                .map_err(into_mailbox_error)?;
            Ok(OpenSlot {
                id: slot.id,
                callback_url: slot.callback_url,
                token: slot.token,
                deadline: slot.deadline,
            })
        })
    }

    fn wait<'a>(
        &'a self,
        slot: &'a OpenSlot,
        after: u64,
        wait: Duration,
    ) -> BoxFuture<'a, Result<Vec<ReceivedCallback>, MailboxError>> {
        Box::pin(async move {
            let deliveries = self
                .client
                .wait(&slot.id, after, wait)
                .await
                .map_err(into_mailbox_error)?;
            Ok(deliveries
                .into_iter()
                .map(|delivery| ReceivedCallback {
                    sequence: delivery.sequence,
                    received_at: delivery.received_at,
                    headers: delivery.headers,
                    body: delivery.body,
                })
                .collect())
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    #[tokio::test]
    async fn an_embedded_relay_delivers_a_bearer_callback() {
        let mailbox = RelayMailbox::embedded().await.unwrap();
        assert!(mailbox.is_embedded());
        let slot = mailbox
            .open(SlotRequest {
                auth: SlotAuth::Bearer,
                deadline: SystemTime::now() + Duration::from_secs(60),
                label: "gate".to_owned(),
            })
            .await
            .unwrap();
        assert!(slot.callback_url.starts_with(mailbox.url()));
        assert!(
            mailbox
                .wait(&slot, 0, Duration::ZERO)
                .await
                .unwrap()
                .is_empty()
        );
        let status = reqwest::Client::new()
            .post(format!("{}/callback", slot.callback_url))
            .bearer_auth(slot.token.as_deref().unwrap())
            .body(r#"{"success":true,"mdMessage":"migrated"}"#)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), 202);
        let received = mailbox
            .wait(&slot, 0, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].sequence, 1);
        assert_eq!(
            received[0].body,
            br#"{"success":true,"mdMessage":"migrated"}"#.to_vec()
        );
        assert!(
            received[0]
                .headers
                .iter()
                .all(|(name, _)| name != "authorization")
        );
    }

    #[tokio::test]
    async fn an_unreachable_relay_is_transient_and_a_refusal_permanent() {
        // Bind and drop a listener to get a port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let gone = RelayMailbox::remote(
            &format!("http://127.0.0.1:{port}"),
            Credential::Token("token".into()),
        )
        .unwrap();
        let request = SlotRequest {
            auth: SlotAuth::HmacGithub,
            deadline: SystemTime::now() + Duration::from_secs(60),
            label: String::new(),
        };
        let err = gone.open(request.clone()).await.unwrap_err();
        assert!(matches!(err, MailboxError::Transient(_)), "{err}");

        let embedded = RelayMailbox::embedded().await.unwrap();
        let wrong = RelayMailbox::remote(
            embedded.url(),
            Credential::Token("not-the-relay-token".into()),
        )
        .unwrap();
        let err = wrong.open(request).await.unwrap_err();
        assert!(matches!(err, MailboxError::Permanent(_)), "{err}");
    }

    #[tokio::test]
    async fn a_fetched_credential_is_fetched_again_for_every_slot() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};

        let embedded = RelayMailbox::embedded().await.unwrap();
        let fetches = Arc::new(AtomicUsize::new(0));
        let counter = fetches.clone();
        let fetch: hookgate_relay::FetchCredential = Arc::new(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                if n == 0 {
                    Ok("an-expired-oidc-token".to_owned())
                } else {
                    Err("the runner's token service is down".to_owned())
                }
            })
        });
        let mailbox = RelayMailbox::remote(embedded.url(), Credential::Fetched(fetch)).unwrap();
        let request = SlotRequest {
            auth: SlotAuth::Bearer,
            deadline: SystemTime::now() + Duration::from_secs(60),
            label: String::new(),
        };
        // The first slot is refused by the relay (a token it does not accept) ...
        let first = mailbox.open(request.clone()).await.unwrap_err();
        assert!(matches!(first, MailboxError::Permanent(_)), "{first}");
        // ... and the second asks for a new credential rather than reusing the first.
        let second = mailbox.open(request).await.unwrap_err();
        assert!(
            second
                .to_string()
                .contains("the runner's token service is down"),
            "{second}"
        );
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }
}
