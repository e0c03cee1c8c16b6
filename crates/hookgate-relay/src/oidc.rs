//! Verifies the GitHub Actions OIDC token a job may present to create a slot: an RS256 JWT from
//! the configured issuer (GitHub's, or a GitHub Enterprise server's), signed by a key in the
//! issuer's JWKS, for the relay's audience, unexpired, from an allowed repository or owner.
//! Keys are cached by `kid` and fetched again when a token names a key not seen yet (at most
//! once per [`REFETCH_INTERVAL`], so unknown `kid`s cannot make the relay hammer the issuer).

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tokio::sync::RwLock;

/// The least time between two fetches of the JWKS.
const REFETCH_INTERVAL: Duration = Duration::from_secs(10);
/// How far the issuer's clock and the relay's may be apart: a token is taken this long before
/// its `nbf` and `iat`, and this long after its `exp`.
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// GitHub's OIDC issuer for Actions.
pub const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";

/// Whom the relay trusts to create slots with an OIDC token.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// The `iss` tokens must carry.
    pub issuer: String,
    /// Where the issuer's signing keys are (`{issuer}/.well-known/jwks` by default).
    pub jwks_url: String,
    /// The `aud` tokens must carry.
    pub audience: String,
    /// Repositories (`owner/name`) whose jobs may create slots.
    pub allowed_repositories: Vec<String>,
    /// Owners (users or organizations) whose repositories' jobs may create slots.
    pub allowed_owners: Vec<String>,
}

/// Why an OIDC token was refused.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The token is not a JWT, or not RS256, or names no key.
    #[error("the OIDC token is malformed: {0}")]
    Malformed(String),
    /// No key of the issuer has the token's `kid`.
    #[error("the OIDC token is signed by a key the issuer does not publish")]
    UnknownKey,
    /// The issuer's keys could not be fetched.
    #[error("cannot fetch the issuer's keys: {0}")]
    Jwks(String),
    /// Signature, issuer, audience or expiry are wrong.
    #[error("the OIDC token is not valid: {0}")]
    Invalid(String),
    /// The token is valid but its repository is not on the allow-list.
    #[error("repository {repository:?} (owner {owner:?}) may not create slots on this relay")]
    NotAllowed {
        /// The token's `repository` claim.
        repository: String,
        /// The token's `repository_owner` claim.
        owner: String,
    },
}

/// The claims the relay reads from a GitHub Actions OIDC token.
#[derive(Debug, serde::Deserialize)]
struct ActionsClaims {
    /// When the token was issued (seconds since the epoch); GitHub always sets it.
    iat: u64,
    #[serde(default)]
    repository: String,
    #[serde(default)]
    repository_owner: String,
}

/// The job a verified token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionsJob {
    /// `owner/name`.
    pub repository: String,
}

#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, DecodingKey>,
    fetched_at: Option<Instant>,
}

/// Verifies OIDC tokens against one issuer.
pub struct OidcVerifier {
    config: OidcConfig,
    http: reqwest::Client,
    cache: RwLock<KeyCache>,
}

impl std::fmt::Debug for OidcVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcVerifier")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl OidcVerifier {
    /// A verifier for `config`; keys are fetched on first use.
    pub fn new(config: OidcConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Self {
            config,
            http,
            cache: RwLock::new(KeyCache::default()),
        }
    }

    /// Verifies `token` and checks the allow-list.
    pub async fn verify(&self, token: &str) -> Result<ActionsJob, OidcError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|err| OidcError::Malformed(err.to_string()))?;
        if header.alg != Algorithm::RS256 {
            return Err(OidcError::Malformed(format!(
                "algorithm {:?} is not RS256",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| OidcError::Malformed("the header names no key (kid)".to_owned()))?;
        let key = self.key(&kid).await?;

        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        // Not before `nbf` (jsonwebtoken leaves this check off unless told), with the same
        // allowance for clocks apart as `exp`.
        validation.validate_nbf = true;
        validation.leeway = CLOCK_SKEW.as_secs();
        let claims = jsonwebtoken::decode::<ActionsClaims>(token, &key, &validation)
            .map_err(|err| OidcError::Invalid(err.to_string()))?
            .claims;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        if claims.iat > now + CLOCK_SKEW.as_secs() {
            return Err(OidcError::Invalid(format!(
                "the token says it was issued {} s from now",
                claims.iat - now
            )));
        }

        let allowed = self
            .config
            .allowed_repositories
            .iter()
            .any(|repository| repository.eq_ignore_ascii_case(&claims.repository))
            || self
                .config
                .allowed_owners
                .iter()
                .any(|owner| owner.eq_ignore_ascii_case(&claims.repository_owner));
        if claims.repository.is_empty() || !allowed {
            return Err(OidcError::NotAllowed {
                repository: claims.repository,
                owner: claims.repository_owner,
            });
        }
        Ok(ActionsJob {
            repository: claims.repository,
        })
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey, OidcError> {
        {
            let cache = self.cache.read().await;
            if let Some(key) = cache.keys.get(kid) {
                return Ok(key.clone());
            }
            if cache
                .fetched_at
                .is_some_and(|at| at.elapsed() < REFETCH_INTERVAL)
            {
                return Err(OidcError::UnknownKey);
            }
        }
        let mut cache = self.cache.write().await;
        // Another request may have fetched while this one waited for the lock.
        if cache
            .fetched_at
            .is_none_or(|at| at.elapsed() >= REFETCH_INTERVAL)
        {
            cache.fetched_at = Some(Instant::now());
            cache.keys = self.fetch().await?;
        }
        cache.keys.get(kid).cloned().ok_or(OidcError::UnknownKey)
    }

    async fn fetch(&self) -> Result<HashMap<String, DecodingKey>, OidcError> {
        let response = self
            .http
            .get(&self.config.jwks_url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|err| OidcError::Jwks(err.to_string()))?;
        let set: JwkSet = response
            .json()
            .await
            .map_err(|err| OidcError::Jwks(err.to_string()))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => {
                    keys.insert(kid, key);
                }
                Err(err) => tracing::warn!(%kid, error = %err, "skipping an unusable JWKS key"),
            }
        }
        tracing::info!(keys = keys.len(), url = %self.config.jwks_url, "fetched OIDC keys");
        Ok(keys)
    }
}
