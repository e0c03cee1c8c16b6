//! What a run needs besides its plan: the values templates see (`context`, `secrets`, `armory`,
//! `github`), and the clocks (timeouts, backoff, request timeouts), which tests shorten.

use std::time::Duration;

use hookgate_config::DeploymentFile;
use indexmap::IndexMap;
use serde_json::Value;

use crate::backoff::Backoff;
use crate::request::Timeouts;

/// The values of `{{ armory.* }}` other than `callbackUri` (which belongs to a slot).
#[derive(Debug, Clone, Default)]
pub struct ArmoryValues {
    /// `application` of the file.
    pub application_name: String,
    /// The target's name.
    pub environment_name: String,
    /// This run's id (`GITHUB_RUN_ID-GITHUB_RUN_ATTEMPT` in Actions).
    pub deployment_id: String,
    /// The target's `account`.
    pub account_name: String,
    /// The target's `namespace`.
    pub namespace: String,
    /// `armory.replicaSetName`: the new version's ReplicaSet, when the workflow passes it.
    pub replica_set_name: Option<String>,
    /// `armory.preview.<service>`: a service's preview URL, when the workflow passes it.
    pub preview: IndexMap<String, String>,
}

/// The `armory.*` values a workflow passes (`--armory KEY=VALUE`, the action's `armory` input):
/// those Armory derived from the cluster, which hookgate cannot know by itself.
pub const ARMORY_KEYS_PASSED: &str = "`replicaSetName` or `preview.<service>`";

impl ArmoryValues {
    /// The values for `target` of `file`.
    pub fn for_target(file: &DeploymentFile, target: &str, deployment_id: String) -> Self {
        let spec = file.targets.get(target);
        ArmoryValues {
            application_name: file.application.clone().unwrap_or_default(),
            environment_name: target.to_owned(),
            deployment_id,
            account_name: spec.and_then(|t| t.account.clone()).unwrap_or_default(),
            namespace: spec.and_then(|t| t.namespace.clone()).unwrap_or_default(),
            replica_set_name: None,
            preview: IndexMap::new(),
        }
    }

    /// Sets a passed value: `replicaSetName`, or `preview.<service>` (see [`ARMORY_KEYS_PASSED`]).
    pub fn set(&mut self, key: &str, value: String) -> Result<(), String> {
        match key.split_once('.') {
            None if key == "replicaSetName" => self.replica_set_name = Some(value),
            Some(("preview", service)) if !service.is_empty() && !service.contains('.') => {
                self.preview.insert(service.to_owned(), value);
            }
            _ => {
                return Err(format!(
                    "`armory.{key}` cannot be passed: pass {ARMORY_KEYS_PASSED} (hookgate fills applicationName, environmentName, deploymentId, accountName, namespace and callbackUri itself)"
                ));
            }
        }
        Ok(())
    }

    /// `armory.*` as templates see it (without `callbackUri`, which a slot adds).
    pub fn to_json(&self) -> serde_json::Value {
        let mut armory = serde_json::json!({
            "applicationName": self.application_name,
            "environmentName": self.environment_name,
            "deploymentId": self.deployment_id,
            "accountName": self.account_name,
            "namespace": self.namespace,
        });
        if let Some(map) = armory.as_object_mut() {
            if let Some(name) = &self.replica_set_name {
                map.insert("replicaSetName".to_owned(), name.clone().into());
            }
            if !self.preview.is_empty() {
                map.insert("preview".to_owned(), serde_json::json!(self.preview));
            }
        }
        armory
    }
}

/// Settings of one run.
#[derive(Clone)]
pub struct RunSettings {
    /// `--context` values (a step's own `context` wins).
    pub context: IndexMap<String, Value>,
    /// `--secret` values. Never printed: every value is masked.
    pub secrets: IndexMap<String, String>,
    /// `armory.*`.
    pub armory: ArmoryValues,
    /// `github.*`: the `GITHUB_*` environment, lower case without the prefix (never the token).
    pub github: IndexMap<String, String>,
    /// The whole run's time limit (`--timeout`).
    pub run_timeout: Option<Duration>,
    /// What the run's time limit is called in messages ("no result within ...").
    pub run_timeout_name: String,
    /// Delays between retries of a request.
    pub retry_backoff: Backoff,
    /// Delays between attempts to reach an unavailable relay.
    pub relay_backoff: Backoff,
    /// Connect and read timeouts of requests.
    pub request_timeouts: Timeouts,
    /// How long a cancel request may take.
    pub cancel_timeout: Duration,
    /// How long reporters may take to catch up at the end of a cancelled run.
    pub reporter_grace: Duration,
    /// Where requests may go; `None`: anywhere (a run on a runner reaches what its runner can).
    pub outbound: Option<std::sync::Arc<crate::outbound::OutboundPolicy>>,
}

impl std::fmt::Debug for RunSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunSettings")
            .field("context", &self.context)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("armory", &self.armory)
            .field("run_timeout", &self.run_timeout)
            .finish_non_exhaustive()
    }
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings {
            context: IndexMap::new(),
            secrets: IndexMap::new(),
            armory: ArmoryValues::default(),
            github: IndexMap::new(),
            run_timeout: None,
            run_timeout_name: "the run's --timeout".to_owned(),
            retry_backoff: Backoff::default(),
            relay_backoff: Backoff {
                base: Duration::from_secs(1),
                max: Duration::from_secs(30),
            },
            request_timeouts: Timeouts::default(),
            cancel_timeout: Duration::from_secs(3),
            reporter_grace: Duration::from_secs(5),
            outbound: None,
        }
    }
}

/// `github.*` from an environment: `GITHUB_REPOSITORY` → `repository`, ... `GITHUB_TOKEN` is
/// left out (it is a secret, not a template value).
pub fn github_values(vars: impl IntoIterator<Item = (String, String)>) -> IndexMap<String, String> {
    let mut values: IndexMap<String, String> = vars
        .into_iter()
        .filter_map(|(key, value)| {
            let name = key.strip_prefix("GITHUB_")?;
            (name != "TOKEN" && !name.is_empty()).then(|| (name.to_ascii_lowercase(), value))
        })
        .collect();
    values.sort_keys();
    values
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn github_values_drop_the_prefix_and_the_token() {
        let values = github_values([
            ("GITHUB_REPOSITORY".to_owned(), "o/r".to_owned()),
            ("GITHUB_TOKEN".to_owned(), "secret".to_owned()),
            ("HOME".to_owned(), "/root".to_owned()),
        ]);
        assert_eq!(values.get("repository").map(String::as_str), Some("o/r"));
        assert_eq!(values.len(), 1);
    }
}
