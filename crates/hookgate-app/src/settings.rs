//! The server's own configuration of its gates (`--gates-config`, YAML): which target an
//! environment runs, where the deployment file is, which repositories may read it at the
//! deployment's own commit, which secrets each repository is granted, where outbound calls may
//! go, and how long a gate may wait. Secret values come from a secrets file or from
//! `HOOKGATE_SECRET_<NAME>` variables, never from this file.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hookgate_engine::outbound::OutboundPolicy;
use serde::Deserialize;

/// GitHub waits at most 30 days for a protection rule's answer.
pub const GITHUB_LIMIT: Duration = Duration::from_secs(30 * 24 * 3600);

/// The configuration file, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct File {
    #[serde(default)]
    deployment_file: Option<String>,
    #[serde(default)]
    environments: BTreeMap<String, String>,
    #[serde(default)]
    use_deployment_sha: Vec<String>,
    #[serde(default)]
    secrets: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    allow_outbound: Vec<String>,
    #[serde(default)]
    timeout: Option<String>,
}

/// How the server runs gates.
#[derive(Debug, Clone)]
pub struct GateSettings {
    /// The deployment file's path in each repository.
    pub deployment_file: String,
    /// Environment name → target name, where they differ.
    pub environments: BTreeMap<String, String>,
    /// Repositories (`owner/name`, `owner/*`) whose file is read at the deployment's commit
    /// instead of the default branch's.
    pub use_deployment_sha: Vec<String>,
    /// Repository patterns (`owner/name`, `owner/*`, `*`) → the secrets they are granted.
    pub grants: BTreeMap<String, Vec<String>>,
    /// The secrets' values, by name. Never printed.
    pub secret_values: BTreeMap<String, String>,
    /// Where outbound calls may go besides public addresses.
    pub outbound: Arc<OutboundPolicy>,
    /// The longest a gate waits; at most GitHub's 30 days.
    pub timeout: Duration,
}

impl Default for GateSettings {
    fn default() -> Self {
        GateSettings {
            deployment_file: "deploy.yml".to_owned(),
            environments: BTreeMap::new(),
            use_deployment_sha: Vec::new(),
            grants: BTreeMap::new(),
            secret_values: BTreeMap::new(),
            outbound: Arc::new(OutboundPolicy::default()),
            timeout: Duration::from_secs(24 * 3600),
        }
    }
}

/// Whether `repository` (`owner/name`) matches `pattern` (`owner/name`, `owner/*` or `*`),
/// case-insensitively as GitHub names are.
pub fn repository_matches(pattern: &str, repository: &str) -> bool {
    let pattern = pattern.trim().to_ascii_lowercase();
    let repository = repository.to_ascii_lowercase();
    match pattern.strip_suffix("/*") {
        _ if pattern == "*" => true,
        Some(owner) => repository
            .split_once('/')
            .is_some_and(|(repo_owner, _)| repo_owner == owner),
        None => pattern == repository,
    }
}

impl GateSettings {
    /// Reads the configuration file (YAML) at `path`, if given, and the secrets: the file at
    /// `secrets_file` (YAML, name → value) and then `HOOKGATE_SECRET_<NAME>` variables from
    /// `environment`.
    pub fn load(
        path: Option<&Path>,
        secrets_file: Option<&Path>,
        environment: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, String> {
        let file: File = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
                parse_yaml(&text).map_err(|err| format!("{}: {err}", path.display()))?
            }
            None => File::default(),
        };
        let mut secret_values = BTreeMap::new();
        if let Some(path) = secrets_file {
            let text = std::fs::read_to_string(path)
                .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
            let values: BTreeMap<String, String> = parse_yaml(&text).map_err(|err| {
                format!(
                    "{}: expected a map of secret names to text values: {err}",
                    path.display()
                )
            })?;
            secret_values.extend(values);
        }
        for (key, value) in environment {
            if let Some(name) = key.strip_prefix("HOOKGATE_SECRET_")
                && !name.is_empty()
            {
                secret_values.insert(name.to_owned(), value);
            }
        }
        let mut settings = GateSettings {
            secret_values,
            ..GateSettings::default()
        };
        if let Some(path) = file.deployment_file {
            settings.deployment_file = path.trim_start_matches('/').to_owned();
        }
        settings.environments = file.environments;
        settings.use_deployment_sha = file.use_deployment_sha;
        settings.grants = file.secrets;
        settings.outbound = Arc::new(
            OutboundPolicy::allowing(&file.allow_outbound)
                .map_err(|err| format!("allowOutbound: {err}"))?,
        );
        if let Some(timeout) = file.timeout {
            let timeout = humantime::parse_duration(&timeout)
                .map_err(|err| format!("timeout: `{timeout}` is not a duration: {err}"))?;
            if timeout > GITHUB_LIMIT {
                return Err(format!(
                    "timeout: {} is longer than the 30 days GitHub waits for a protection rule",
                    humantime::format_duration(timeout)
                ));
            }
            settings.timeout = timeout;
        }
        Ok(settings)
    }

    /// The target an environment runs.
    pub fn target_for<'a>(&'a self, environment: &'a str) -> &'a str {
        self.environments
            .get(environment)
            .map_or(environment, String::as_str)
    }

    /// Whether the deployment file of `repository` is read at the deployment's commit.
    pub fn reads_deployment_sha(&self, repository: &str) -> bool {
        self.use_deployment_sha
            .iter()
            .any(|pattern| repository_matches(pattern, repository))
    }

    /// Whether `repository` is granted the secret `name`.
    pub fn granted(&self, repository: &str, name: &str) -> bool {
        self.grants.iter().any(|(pattern, names)| {
            repository_matches(pattern, repository) && names.iter().any(|n| n == name)
        })
    }
}

fn parse_yaml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    let tree = hookgate_config::located::parse(text)
        .map_err(|err| format!("line {}, column {}: {err}", err.span.line, err.span.col))?;
    let json = match tree.to_json() {
        serde_json::Value::Null => serde_json::json!({}),
        json => json,
    };
    serde_json::from_value(json).map_err(|err| err.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn repository_patterns_match_as_documented() {
        assert!(repository_matches("acme/web", "Acme/Web"));
        assert!(repository_matches("acme/*", "acme/api"));
        assert!(!repository_matches("acme/*", "acmex/api"));
        assert!(repository_matches("*", "any/thing"));
        assert!(!repository_matches("acme/web", "acme/api"));
    }

    #[test]
    fn the_file_and_secrets_load() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("gates.yml");
        std::fs::write(
            &config,
            "environments:\n  production: prod\nsecrets:\n  acme/*: [TOKEN]\nallowOutbound: [10.0.0.0/8]\ntimeout: 2h\n",
        )
        .unwrap();
        let secrets = dir.path().join("secrets.yml");
        std::fs::write(&secrets, "TOKEN: from-file\nOTHER: x\n").unwrap();
        let settings = GateSettings::load(
            Some(&config),
            Some(&secrets),
            [("HOOKGATE_SECRET_OTHER".to_owned(), "from-env".to_owned())],
        )
        .unwrap();
        assert_eq!(settings.target_for("production"), "prod");
        assert_eq!(settings.target_for("staging"), "staging");
        assert!(settings.granted("acme/web", "TOKEN"));
        assert!(!settings.granted("other/web", "TOKEN"));
        assert_eq!(settings.secret_values["OTHER"], "from-env");
        assert_eq!(settings.timeout, Duration::from_secs(7200));
    }

    #[test]
    fn mistakes_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("gates.yml");
        std::fs::write(&config, "enviroments: {}\n").unwrap();
        let err = GateSettings::load(Some(&config), None, []).unwrap_err();
        assert!(err.contains("enviroments"), "{err}");
        std::fs::write(&config, "timeout: 31d\n").unwrap();
        let err = GateSettings::load(Some(&config), None, []).unwrap_err();
        assert!(err.contains("30 days"), "{err}");
    }

    #[test]
    fn the_example_configuration_loads() {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../app/gates.example.yml"
        ));
        let settings = GateSettings::load(Some(path), None, []).unwrap();
        assert_eq!(settings.target_for("production-eu"), "production");
        assert!(settings.granted("acme/payments", "CHANGE_API_TOKEN"));
        assert!(!settings.granted("acme/web", "CHANGE_API_TOKEN"));
    }

    #[test]
    fn the_app_manifest_asks_for_what_the_app_uses_and_no_more() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../app/");
        let manifest: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(format!("{root}manifest.json")).unwrap())
                .unwrap();
        let html = std::fs::read_to_string(format!("{root}create-app.html")).unwrap();
        let embedded = html
            .split("value='")
            .nth(1)
            .unwrap()
            .split("'>")
            .next()
            .unwrap();
        let embedded: serde_json::Value = serde_json::from_str(embedded).unwrap();
        let wanted =
            serde_json::json!({"deployments": "write", "actions": "read", "contents": "read"});
        for manifest in [&manifest, &embedded] {
            assert_eq!(manifest["default_permissions"], wanted);
            assert_eq!(
                manifest["default_events"],
                serde_json::json!(["deployment_protection_rule"])
            );
            assert!(
                manifest["hook_attributes"]["url"]
                    .as_str()
                    .unwrap()
                    .ends_with("/github/webhook")
            );
        }
    }
}
