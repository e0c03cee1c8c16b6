//! GitHub App authentication: the App's id and private key become an RS256 JWT, the JWT finds
//! the App's installation on the repository, and the installation gives a token scoped to that
//! repository. The token is cached and replaced before it expires (GitHub gives an hour).
//!
//! Each new installation token is announced to the runner with `::add-mask::` so it can never
//! appear in the job's log.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::client::{ApiError, Resend, RestClient};
use crate::context::{Credentials, Repository, Secret};
use crate::workflow_commands;

/// How far back the JWT's `iat` is set, for clocks that run ahead of GitHub's.
const CLOCK_DRIFT: Duration = Duration::from_secs(60);
/// The JWT's lifetime after `iat`; GitHub accepts at most ten minutes.
const JWT_LIFETIME: Duration = Duration::from_secs(9 * 60);
/// An installation token with less left than this is replaced.
const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// App authentication that cannot start.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The private key is not an RSA key in PEM form.
    #[error("input `app-private-key` is not an RSA private key in PEM form: {0}")]
    BadKey(#[source] jsonwebtoken::errors::Error),
    /// App authentication needs the repository to find the installation.
    #[error("GitHub App authentication needs GITHUB_REPOSITORY to find the App's installation")]
    NoRepository,
}

/// Supplies a token for GitHub's API, fresh enough to use now.
pub trait TokenSource: Send + Sync {
    /// The token to send as `Authorization: Bearer <token>`. Secret: never log it.
    fn token(&self) -> BoxFuture<'_, Result<String, String>>;
}

/// A fixed token, such as the job's `GITHUB_TOKEN`.
pub struct StaticToken(pub String);

impl TokenSource for StaticToken {
    fn token(&self) -> BoxFuture<'_, Result<String, String>> {
        let token = self.0.clone();
        Box::pin(async move { Ok(token) })
    }
}

/// The token source for the given credentials: the token itself, or a GitHub App's
/// installation tokens.
///
/// `in_actions` says whether this runs in a GitHub Actions job, whose runner is told to mask
/// each new installation token; elsewhere nothing is printed.
pub fn token_source(
    credentials: &Credentials,
    rest: &RestClient,
    repository: Option<&Repository>,
    in_actions: bool,
) -> Result<Arc<dyn TokenSource>, AuthError> {
    match credentials {
        Credentials::Token(token) => Ok(Arc::new(StaticToken(token.expose().to_owned()))),
        Credentials::App {
            app_id,
            private_key,
        } => {
            let repository = repository.ok_or(AuthError::NoRepository)?;
            let mut tokens = AppTokens::new(app_id, private_key, repository.clone(), rest.clone())?;
            tokens.announce = in_actions;
            Ok(Arc::new(tokens))
        }
    }
}

struct CachedToken {
    token: Secret,
    expires_at: SystemTime,
}

/// Installation tokens of a GitHub App for one repository, fetched when first needed.
pub struct AppTokens {
    app_id: String,
    key: EncodingKey,
    repository: Repository,
    rest: RestClient,
    cached: Mutex<Option<CachedToken>>,
    installation_id: Mutex<Option<u64>>,
    /// Whether each new token is announced with `::add-mask::` (only inside Actions: elsewhere
    /// the command would print the token itself).
    announce: bool,
}

impl AppTokens {
    /// Checks the key now by signing once, so a bad key (a public key given by mistake, a PEM
    /// that does not parse) is a usage error at start-up and not a failure at the first call.
    pub fn new(
        app_id: &str,
        private_key: &Secret,
        repository: Repository,
        rest: RestClient,
    ) -> Result<Self, AuthError> {
        let key = EncodingKey::from_rsa_pem(private_key.expose().as_bytes())
            .map_err(AuthError::BadKey)?;
        jsonwebtoken::encode(
            &Header::new(Algorithm::RS256),
            &json!({"purpose": "checking the key"}),
            &key,
        )
        .map_err(AuthError::BadKey)?;
        Ok(AppTokens {
            app_id: app_id.to_owned(),
            key,
            repository,
            rest,
            cached: Mutex::new(None),
            installation_id: Mutex::new(None),
            announce: false,
        })
    }

    /// A JWT that authenticates as the App itself.
    fn app_jwt(&self) -> Result<String, ApiError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let issued = now.saturating_sub(CLOCK_DRIFT);
        // GitHub takes the numeric App id or the App's client id.
        let issuer = self
            .app_id
            .parse::<u64>()
            .map_or_else(|_| json!(self.app_id), |id| json!(id));
        let claims = json!({
            "iat": issued.as_secs(),
            "exp": (issued + JWT_LIFETIME).as_secs(),
            "iss": issuer,
        });
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.key)
            .map_err(|e| ApiError::Token(format!("cannot sign the App's JWT: {e}")))
    }

    async fn installation_id(&self, jwt: &str) -> Result<u64, ApiError> {
        let mut known = self.installation_id.lock().await;
        if let Some(id) = *known {
            return Ok(id);
        }
        let path = format!(
            "/repos/{}/{}/installation",
            self.repository.owner, self.repository.name
        );
        let answer = self
            .rest
            .send(Method::GET, &path, jwt, None, Resend::Idempotent)
            .await
            .map_err(|error| match error.status() {
                Some(StatusCode::NOT_FOUND) => ApiError::Token(format!(
                    "the GitHub App {} is not installed on {} ({error})",
                    self.app_id, self.repository
                )),
                Some(StatusCode::UNAUTHORIZED) => ApiError::Token(format!(
                    "GitHub did not accept the App's JWT: check `app-id` and `app-private-key` ({error})"
                )),
                _ => error,
            })?;
        let id = answer
            .get("id")
            .and_then(Value::as_u64)
            .ok_or_else(|| ApiError::Unexpected {
                method: Method::GET,
                path,
                detail: "no installation `id`".to_owned(),
            })?;
        *known = Some(id);
        Ok(id)
    }

    async fn fresh_token(&self) -> Result<CachedToken, ApiError> {
        let jwt = self.app_jwt()?;
        let installation = self.installation_id(&jwt).await?;
        let path = format!("/app/installations/{installation}/access_tokens");
        let body = json!({ "repositories": [self.repository.name] });
        // A second token is as good as the first: resending is harmless.
        let answer = self
            .rest
            .send(Method::POST, &path, &jwt, Some(&body), Resend::Idempotent)
            .await?;
        let unexpected = |detail: &str| ApiError::Unexpected {
            method: Method::POST,
            path: path.clone(),
            detail: detail.to_owned(),
        };
        let token = answer
            .get("token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unexpected("no `token`"))?;
        let expires_at = answer
            .get("expires_at")
            .and_then(Value::as_str)
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
            .ok_or_else(|| unexpected("no valid `expires_at`"))?;
        if self.announce {
            workflow_commands::add_mask(token);
        }
        Ok(CachedToken {
            token: Secret::new(token),
            expires_at,
        })
    }
}

impl TokenSource for AppTokens {
    fn token(&self) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(async move {
            let mut cached = self.cached.lock().await;
            let fresh_enough = cached.as_ref().is_some_and(|c| {
                c.expires_at
                    .duration_since(SystemTime::now())
                    .is_ok_and(|left| left > REFRESH_MARGIN)
            });
            if !fresh_enough {
                *cached = Some(self.fresh_token().await.map_err(|e| e.to_string())?);
            }
            cached
                .as_ref()
                .map(|c| c.token.expose().to_owned())
                .ok_or_else(|| "no installation token".to_owned())
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::client::RetryPolicy;

    fn tokens_for(pem: &str) -> Result<AppTokens, AuthError> {
        let rest = RestClient::new("http://127.0.0.1:9", RetryPolicy::default()).unwrap();
        let repository = Repository {
            owner: "octo".to_owned(),
            name: "shop".to_owned(),
        };
        AppTokens::new("12345", &Secret::new(pem), repository, rest)
    }

    /// The test key of tests/vectors (generated for hookgate's tests; it signs nothing real).
    const PRIVATE_KEY: &str = include_str!("../../../tests/vectors/github-app-test-key.pem");
    const PUBLIC_KEY: &str = include_str!("../../../tests/vectors/github-app-test-key.pub.pem");

    #[test]
    fn a_private_key_signs_at_start_up() {
        let tokens = tokens_for(PRIVATE_KEY).unwrap();
        assert_eq!(tokens.app_jwt().unwrap().split('.').count(), 3);
    }

    #[test]
    fn a_public_key_or_a_broken_pem_is_refused_at_start_up_naming_the_input() {
        let broken = PRIVATE_KEY.replacen("MII", "MIX", 1);
        for (what, pem) in [
            ("a public key", PUBLIC_KEY),
            ("a broken PEM", broken.as_str()),
            ("no PEM at all", "12345"),
        ] {
            let error = tokens_for(pem)
                .err()
                .unwrap_or_else(|| panic!("{what} was accepted"));
            assert!(matches!(error, AuthError::BadKey(_)), "{what}: {error:?}");
            assert!(
                error.to_string().contains("input `app-private-key`"),
                "{what}: {error}"
            );
        }
    }
}
