//! The relay's settings, as the server uses them. The command line (`hookgate relay`) builds one
//! from flags and `HOOKGATE_*` variables; tests and the embedded relay build one in code.

use std::time::Duration;

use crate::oidc::OidcConfig;

/// The default `--store`.
pub const DEFAULT_STORE: &str = "sqlite:hookgate-relay.sqlite";

/// Everything the relay needs to serve.
#[derive(Clone)]
pub struct RelayConfig {
    /// The URL the outside world reaches the relay at (callback URLs start with it, slot tokens
    /// name it as their audience). `None`: `http://` and the address the listener is bound to.
    pub public_url: Option<String>,
    /// Where slots and callbacks are kept: `sqlite:PATH`, `sqlite::memory:` or `postgres://...`.
    pub store: String,
    /// Secrets that authorize creating slots (`Authorization: Bearer <token>`). Several may be
    /// valid at once, to rotate them.
    pub relay_tokens: Vec<String>,
    /// The key slot tokens are signed with. `None`: generated once and kept in the store, so
    /// every replica on one database shares it.
    pub signing_key: Option<Vec<u8>>,
    /// GitHub Actions OIDC tokens that may create slots; `None` accepts relay tokens only.
    pub oidc: Option<OidcConfig>,
    /// The largest callback body taken, in bytes.
    pub max_body: usize,
    /// The most callbacks one slot keeps.
    pub max_callbacks_per_slot: u64,
    /// The furthest deadline a slot may have, from its creation.
    pub max_slot_lifetime: Duration,
    /// The longest a long poll is held.
    pub max_wait: Duration,
    /// How long after its deadline a slot and its callbacks are kept.
    pub retention: Duration,
    /// How long shutdown waits for requests in flight.
    pub shutdown_timeout: Duration,
}

impl RelayConfig {
    /// The defaults, with the given store.
    pub fn new(store: impl Into<String>) -> Self {
        Self {
            public_url: None,
            store: store.into(),
            relay_tokens: Vec::new(),
            signing_key: None,
            oidc: None,
            max_body: 64 * 1024,
            max_callbacks_per_slot: 100,
            max_slot_lifetime: Duration::from_secs(24 * 3600),
            max_wait: Duration::from_secs(60),
            retention: Duration::from_secs(24 * 3600),
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

impl std::fmt::Debug for RelayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayConfig")
            .field("public_url", &self.public_url)
            .field("store", &redact_url(&self.store))
            .field(
                "relay_tokens",
                &format_args!("[{} hidden]", self.relay_tokens.len()),
            )
            .field("signing_key", &self.signing_key.as_ref().map(|_| "***"))
            .field("oidc", &self.oidc)
            .field("max_body", &self.max_body)
            .field("max_callbacks_per_slot", &self.max_callbacks_per_slot)
            .field("max_slot_lifetime", &self.max_slot_lifetime)
            .field("max_wait", &self.max_wait)
            .field("retention", &self.retention)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .finish()
    }
}

/// A store URL with any password replaced, for logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((credentials, host)) => {
            let user = credentials.split(':').next().unwrap_or_default();
            if credentials.contains(':') {
                format!("{scheme}://{user}:***@{host}{path}")
            } else {
                url.to_owned()
            }
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden_from_logged_urls() {
        assert_eq!(
            redact_url("postgres://relay:s3cret@db.example:5432/hookgate"),
            "postgres://relay:***@db.example:5432/hookgate"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1/test"),
            "postgres://postgres@127.0.0.1/test"
        );
        assert_eq!(redact_url("sqlite:relay.sqlite"), "sqlite:relay.sqlite");
    }

    #[test]
    fn debug_hides_tokens_and_key() {
        let mut config = RelayConfig::new("postgres://u:pw@h/db");
        config.relay_tokens = vec!["tok-en-value".to_owned()];
        config.signing_key = Some(b"key-bytes".to_vec());
        let shown = format!("{config:?}");
        assert!(!shown.contains("tok-en-value"), "{shown}");
        assert!(!shown.contains("key-bytes"), "{shown}");
        assert!(!shown.contains("pw"), "{shown}");
    }
}
