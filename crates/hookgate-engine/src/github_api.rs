//! What the engine needs to reach GitHub's REST API for the `repositoryDispatch` and
//! `workflowDispatch` webhook kinds: a base URL and a token. The token comes from elsewhere (the
//! job's `GITHUB_TOKEN`, or a GitHub App installation token refreshed by the GitHub crate).

use futures::future::BoxFuture;

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

/// Where GitHub's API is and how to authenticate to it.
pub struct GithubApi {
    /// The API's base URL, such as `https://api.github.com` (from `GITHUB_API_URL`).
    pub base_url: String,
    /// The repository the run belongs to (`owner/name`), the default for `workflowDispatch`.
    pub repository: Option<String>,
    /// Where tokens come from.
    pub tokens: Box<dyn TokenSource>,
}
