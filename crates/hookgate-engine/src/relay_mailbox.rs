//! The engine's [`Mailbox`] over a hookgate relay, through the protocol's HTTP client: a relay
//! anywhere (its URL and a relay token or the job's OIDC token), or one the binary embedded in
//! this process. Relay errors keep their class: unreachable or 5xx is `Transient` (the engine
//! retries with backoff), any other refusal `Permanent`.

use std::time::Duration;

use futures::future::BoxFuture;
use hookgate_protocol::{ClientError, CreateSlot, Credential, Delivery, RelayClient, SlotCreated};

use crate::mailbox::{Mailbox, MailboxError};

/// A [`Mailbox`] backed by a relay.
#[derive(Debug)]
pub struct RelayMailbox {
    client: RelayClient,
}

impl RelayMailbox {
    /// A mailbox on the relay at `url`, creating slots with `credential`.
    pub fn new(url: &str, credential: Credential) -> Result<Self, MailboxError> {
        Ok(Self {
            client: RelayClient::with_credential(url, credential).map_err(into_mailbox_error)?,
        })
    }

    /// The relay's URL.
    pub fn url(&self) -> &str {
        self.client.base_url()
    }
}

fn into_mailbox_error(err: ClientError) -> MailboxError {
    match err {
        ClientError::Unavailable(reason) => MailboxError::Transient(reason),
        ClientError::Refused(reason) => MailboxError::Permanent(reason),
    }
}

impl Mailbox for RelayMailbox {
    fn open(&self, request: CreateSlot) -> BoxFuture<'_, Result<SlotCreated, MailboxError>> {
        Box::pin(async move {
            self.client
                .create_slot(&request)
                .await
                .map_err(into_mailbox_error)
        })
    }

    fn wait<'a>(
        &'a self,
        slot: &'a SlotCreated,
        after: u64,
        wait: Duration,
    ) -> BoxFuture<'a, Result<Vec<Delivery>, MailboxError>> {
        Box::pin(async move {
            self.client
                .wait(&slot.id, after, wait)
                .await
                .map_err(into_mailbox_error)
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::SystemTime;

    use hookgate_protocol::{CallbackAuth, Deadline};
    use hookgate_relay::EmbeddedRelay;

    use super::*;

    /// A real relay in this process, and a mailbox on it with its relay token.
    async fn embedded() -> (EmbeddedRelay, RelayMailbox) {
        let relay = EmbeddedRelay::start().await.unwrap();
        let mailbox =
            RelayMailbox::new(relay.url(), Credential::Token(relay.token().to_owned())).unwrap();
        (relay, mailbox)
    }

    fn in_a_minute() -> Deadline {
        Deadline::At(SystemTime::now() + Duration::from_secs(60))
    }

    #[tokio::test]
    async fn an_embedded_relay_delivers_a_bearer_callback() {
        let (_relay, mailbox) = embedded().await;
        let slot = mailbox
            .open(CreateSlot {
                auth: CallbackAuth::Bearer,
                deadline: in_a_minute(),
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
        let gone = RelayMailbox::new(
            &format!("http://127.0.0.1:{port}"),
            Credential::Token("token".into()),
        )
        .unwrap();
        let request = CreateSlot {
            auth: CallbackAuth::HmacGithub,
            deadline: in_a_minute(),
            label: String::new(),
        };
        let err = gone.open(request.clone()).await.unwrap_err();
        assert!(matches!(err, MailboxError::Transient(_)), "{err}");

        let (_relay, embedded) = embedded().await;
        let wrong = RelayMailbox::new(
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

        let (_relay, embedded) = embedded().await;
        let fetches = Arc::new(AtomicUsize::new(0));
        let counter = fetches.clone();
        let fetch: hookgate_protocol::FetchCredential = Arc::new(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                if n == 0 {
                    Ok("an-expired-oidc-token".to_owned())
                } else {
                    Err("the runner's token service is down".to_owned())
                }
            })
        });
        let mailbox = RelayMailbox::new(embedded.url(), Credential::Fetched(fetch)).unwrap();
        let request = CreateSlot {
            auth: CallbackAuth::Bearer,
            deadline: in_a_minute(),
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
