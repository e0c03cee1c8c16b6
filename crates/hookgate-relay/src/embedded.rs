//! A relay inside the running process, for runs outside GitHub Actions with no relay URL: the
//! real server on `127.0.0.1` and a free port, with a throw-away store, a random relay token and
//! a random signing key. Only services on the same machine can reach it, which is what a local
//! run needs.

use std::time::Duration;

use hookgate_auth::SlotTokens;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::RelayConfig;
use crate::server::{self, RelayError};
use crate::store;

/// A running in-process relay; stops when dropped or [`stopped`](Self::stop).
pub struct EmbeddedRelay {
    url: String,
    token: String,
    stop: CancellationToken,
    task: Option<JoinHandle<Result<(), RelayError>>>,
}

impl std::fmt::Debug for EmbeddedRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedRelay")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl EmbeddedRelay {
    /// Starts a relay on `127.0.0.1` and a free port.
    pub async fn start() -> Result<Self, RelayError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(RelayError::Serve)?;
        let address = listener.local_addr().map_err(RelayError::Address)?;
        let token = hex::encode(rand::random::<[u8; 32]>());
        let mut config = RelayConfig::new("sqlite::memory:");
        config.relay_tokens = vec![token.clone()];
        config.signing_key = Some(SlotTokens::generate_key().to_vec());
        config.shutdown_timeout = Duration::from_secs(2);
        let store = store::open(&config.store).await?;
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let task = tokio::spawn(server::serve(config, store, listener, async move {
            stopped.cancelled().await;
        }));
        Ok(Self {
            url: format!("http://{address}"),
            token,
            stop,
            task: Some(task),
        })
    }

    /// Where the relay listens.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A relay token of this relay, which creates and reads slots. Secret.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Stops the relay and waits for it to finish.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, "the embedded relay stopped with an error")
                }
                Err(err) => tracing::warn!(error = %err, "the embedded relay's task failed"),
            }
        }
    }
}

impl Drop for EmbeddedRelay {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
