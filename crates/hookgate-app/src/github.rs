//! The App's calls to GitHub for one gate, each with an installation token scoped to the
//! gate's repository: the deployment file's contents, status reports and the review that
//! approves or rejects, and the engine's port for the dispatch webhook kinds.

use std::sync::Arc;

use base64::Engine as _;
use hookgate_engine::GithubPort;
use hookgate_github::client::{ApiError, GithubClient, Resend, RestClient, RetryPolicy};
use hookgate_github::context::{Repository, Secret};
use hookgate_github::{AppTokens, GithubRest};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The longest status report GitHub takes, in characters (its guide to custom deployment
/// protection rules); answers' comments are kept to it too.
pub const COMMENT_LIMIT: usize = 1024;

/// The App's identity.
#[derive(Clone)]
pub struct AppIdentity {
    /// The App's id (or client id).
    pub app_id: String,
    /// Its private key (PEM). Never printed.
    pub private_key: Secret,
    /// GitHub's REST API (GitHub Enterprise Server: `https://HOST/api/v3`).
    pub api_url: String,
}

impl std::fmt::Debug for AppIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppIdentity")
            .field("app_id", &self.app_id)
            .field("api_url", &self.api_url)
            .finish_non_exhaustive()
    }
}

/// The App's GitHub clients, one per repository, kept while the relay runs: the gates of one
/// repository share its installation token (an hour long, renewed when it nears its end)
/// instead of asking GitHub for one each.
pub struct RepositoryApis {
    identity: AppIdentity,
    rest: RestClient,
    by_repository: std::sync::Mutex<std::collections::HashMap<String, RepositoryApi>>,
}

impl RepositoryApis {
    /// No client yet, over one shared HTTP client.
    pub fn new(identity: AppIdentity) -> Result<Self, String> {
        let rest = RepositoryApi::shared_client(&identity)?;
        Ok(RepositoryApis {
            identity,
            rest,
            by_repository: std::sync::Mutex::default(),
        })
    }

    /// The client for `repository` (`owner/name`).
    pub fn get(&self, repository: &str) -> Result<RepositoryApi, String> {
        let key = repository.to_ascii_lowercase();
        let mut known = self
            .by_repository
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(api) = known.get(&key) {
            return Ok(api.clone());
        }
        let api = RepositoryApi::new(&self.identity, &self.rest, repository)?;
        known.insert(key, api.clone());
        Ok(api)
    }
}

/// GitHub for one repository, as the App's installation there.
#[derive(Clone)]
pub struct RepositoryApi {
    client: GithubClient,
    repository: Repository,
}

impl RepositoryApi {
    /// The HTTP client for GitHub's API that every gate shares (one connection pool, one TLS
    /// configuration).
    pub fn shared_client(identity: &AppIdentity) -> Result<RestClient, String> {
        RestClient::new(&identity.api_url, RetryPolicy::default()).map_err(|err| err.to_string())
    }

    /// The API for `repository` (`owner/name`), over `rest`, with its own installation tokens.
    pub fn new(
        identity: &AppIdentity,
        rest: &RestClient,
        repository: &str,
    ) -> Result<Self, String> {
        let repository = Repository::parse(repository)
            .ok_or_else(|| format!("`{repository}` is not owner/name"))?;
        let tokens = AppTokens::new(
            &identity.app_id,
            &identity.private_key,
            repository.clone(),
            rest.clone(),
        )
        .map_err(|err| err.to_string())?;
        Ok(RepositoryApi {
            client: GithubClient::new(rest.clone(), Arc::new(tokens)),
            repository,
        })
    }

    /// The engine's port, for dispatches into this repository or others the App may reach.
    pub fn port(&self) -> Arc<dyn GithubPort> {
        Arc::new(GithubRest::new(
            self.client.clone(),
            Some(self.repository.to_string()),
        ))
    }

    /// The text of the file at `path`, at `git_ref` (the default branch when `None`); `None`
    /// when there is no such file.
    pub async fn file(
        &self,
        path: &str,
        git_ref: Option<&str>,
    ) -> Result<Option<String>, ApiError> {
        let encoded: Vec<String> = path
            .split('/')
            .map(|part| hookgate_engine::request::percent_encode(part, b"-._~"))
            .collect();
        let mut api_path = format!(
            "/repos/{}/{}/contents/{}",
            self.repository.owner,
            self.repository.name,
            encoded.join("/")
        );
        if let Some(git_ref) = git_ref {
            api_path.push_str("?ref=");
            api_path.push_str(&hookgate_engine::request::percent_encode(git_ref, b"-._~/"));
        }
        let answer = match self
            .client
            .send(Method::GET, &api_path, None, Resend::Idempotent)
            .await
        {
            Ok(answer) => answer,
            Err(err) if err.status() == Some(StatusCode::NOT_FOUND) => return Ok(None),
            Err(err) => return Err(err),
        };
        let unexpected = |detail: &str| ApiError::Unexpected {
            method: Method::GET,
            path: api_path.clone(),
            detail: detail.to_owned(),
        };
        if answer.get("type").and_then(Value::as_str) != Some("file") {
            return Err(unexpected("not a file"));
        }
        let content: String = answer
            .get("content")
            .and_then(Value::as_str)
            .ok_or_else(|| unexpected("no `content` (a file over 1 MB?)"))?
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(content)
            .map_err(|_| unexpected("`content` is not base64"))?;
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| unexpected("the file is not UTF-8"))
    }

    /// Sends a review of the protection rule of `run_id` for `environment`: `state` approves or
    /// rejects; without it the comment is a status report. The comment is cut to GitHub's limit.
    pub async fn review(
        &self,
        run_id: i64,
        environment: &str,
        state: Option<&str>,
        comment: &str,
    ) -> Result<(), ApiError> {
        let path = format!(
            "/repos/{}/{}/actions/runs/{run_id}/deployment_protection_rule",
            self.repository.owner, self.repository.name
        );
        let mut body = json!({
            "environment_name": environment,
            "comment": cut_comment(comment),
        });
        if let Some(state) = state {
            body["state"] = json!(state);
        }
        // A second identical review changes nothing GitHub keeps: resending is safe.
        self.client
            .send(Method::POST, &path, Some(&body), Resend::Idempotent)
            .await
            .map(|_| ())
    }
}

/// `comment` cut to [`COMMENT_LIMIT`] characters, saying so at the cut.
pub fn cut_comment(comment: &str) -> String {
    if comment.chars().count() <= COMMENT_LIMIT {
        return comment.to_owned();
    }
    const MORE: &str = "\n… (cut at GitHub's limit)";
    let keep = COMMENT_LIMIT - MORE.chars().count();
    let mut cut: String = comment.chars().take(keep).collect();
    cut.push_str(MORE);
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_comments_are_cut_to_the_limit_and_say_so() {
        let cut = cut_comment(&"é".repeat(3000));
        assert_eq!(cut.chars().count(), COMMENT_LIMIT);
        assert!(cut.ends_with("(cut at GitHub's limit)"));
        assert_eq!(cut_comment("short"), "short");
    }
}
