//! The deployment-file model: Armory CD-as-a-Service's `deploy.yml`, plus hookgate's extensions.
//!
//! Two rules shape these types. What hookgate acts on (`webhooks`, `runWebhook`, `constraints`) is
//! strict: `deny_unknown_fields`, so a misspelt key is an error. What belongs to Armory alone
//! (`manifests`, `analysis`, `trafficManagement`, strategy details, ...) is kept as opaque JSON and
//! never rejected, so a real Armory file loads unchanged.

use std::fmt;
use std::time::Duration;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// A whole deployment file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(title = "hookgate deployment file (Armory CD-as-a-Service deploy.yml)")]
pub struct DeploymentFile {
    /// Format version, such as `v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Value>,
    /// Kind of file, such as `kubernetes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The application's name (`armory.applicationName` in templates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<String>,
    /// Deployment targets (environments) by name.
    #[serde(default)]
    pub targets: IndexMap<String, Target>,
    /// Kubernetes manifests; accepted and ignored by hookgate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifests: Option<Value>,
    /// Deployment strategies by name.
    #[serde(default)]
    pub strategies: IndexMap<String, Strategy>,
    /// Canary analysis configuration; accepted and ignored by hookgate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<Value>,
    /// Traffic management configuration; accepted and ignored by hookgate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_management: Option<Value>,
    /// Deployment configuration such as timeouts; accepted and ignored by hookgate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_config: Option<Value>,
    /// The webhooks that steps can run by name.
    #[serde(default)]
    pub webhooks: Vec<Webhook>,
    /// Any other top-level key Armory may add; accepted and ignored.
    #[serde(flatten)]
    pub other: IndexMap<String, Value>,
}

/// One deployment target (an environment).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// The cluster account (`armory.accountName`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The namespace (`armory.namespace`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The name of an entry under `strategies`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    /// What must happen before and after this target is deployed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraints: Option<Constraints>,
    /// Other target keys Armory knows; accepted and ignored.
    #[serde(flatten)]
    pub other: IndexMap<String, Value>,
}

/// Constraints of a target: its dependencies and the gates around its deployment.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Constraints {
    /// Targets that must have been deployed successfully first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// Steps run, in order, before the deployment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub before_deployment: Vec<ConstraintStep>,
    /// Steps run, in order, after the deployment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after_deployment: Vec<ConstraintStep>,
}

/// One entry of `beforeDeployment` or `afterDeployment`: exactly one of its keys is set.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConstraintStep {
    /// Call a webhook and wait for its result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_webhook: Option<RunWebhook>,
    /// Wait for a duration, or for a manual approval (which hookgate cannot give).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<Pause>,
    /// Armory's canary analysis; not handled by hookgate, reported as such.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<Value>,
}

/// One step of a canary strategy, or one task of a blue/green `redirectTrafficAfter`.
/// Armory owns these: unknown keys are kept; `runWebhook` inside is strict.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StrategyStep {
    /// Call a webhook and wait for its result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_webhook: Option<RunWebhook>,
    /// Wait for a duration, or for a manual approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<Pause>,
    /// Shift traffic to the new version; not handled by hookgate, reported as such.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_weight: Option<Value>,
    /// Canary analysis; not handled by hookgate, reported as such.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<Value>,
    /// Expose services; not handled by hookgate, reported as such.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expose_services: Option<Value>,
    /// Any other step kind Armory may add; reported as not handled.
    #[serde(flatten)]
    pub other: IndexMap<String, Value>,
}

/// `pause:` either waits a duration or waits for an approval.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pause {
    /// How long to wait, in `unit`s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<u64>,
    /// `seconds` (the default), `minutes` or `hours`, in any case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<PauseUnit>,
    /// Wait for a manual approval (not something a workflow step can give).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_approved: Option<bool>,
    /// Other pause keys Armory knows (`requiresRoles`, `approvalExpiration`, ...).
    #[serde(flatten)]
    pub other: IndexMap<String, Value>,
}

/// The unit of a pause's `duration`: Armory's three, written in any case (`minutes`, `MINUTES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PauseUnit {
    /// Seconds.
    #[default]
    Seconds,
    /// Minutes.
    Minutes,
    /// Hours.
    Hours,
}

impl PauseUnit {
    const NAMES: [&'static str; 3] = ["seconds", "minutes", "hours"];

    /// The unit's name, in lower case.
    pub fn as_str(self) -> &'static str {
        match self {
            PauseUnit::Seconds => "seconds",
            PauseUnit::Minutes => "minutes",
            PauseUnit::Hours => "hours",
        }
    }

    /// `amount` of this unit.
    pub fn of(self, amount: u64) -> Duration {
        Duration::from_secs(match self {
            PauseUnit::Seconds => amount,
            PauseUnit::Minutes => amount.saturating_mul(60),
            PauseUnit::Hours => amount.saturating_mul(3600),
        })
    }
}

impl Serialize for PauseUnit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for PauseUnit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        match text.to_ascii_lowercase().as_str() {
            "seconds" => Ok(PauseUnit::Seconds),
            "minutes" => Ok(PauseUnit::Minutes),
            "hours" => Ok(PauseUnit::Hours),
            _ => Err(serde::de::Error::unknown_variant(&text, &Self::NAMES)),
        }
    }
}

impl JsonSchema for PauseUnit {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PauseUnit".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "`seconds`, `minutes` or `hours`, in any case.",
            "type": "string",
            "pattern": "^(?:[Ss][Ee][Cc][Oo][Nn][Dd][Ss]|[Mm][Ii][Nn][Uu][Tt][Ee][Ss]|[Hh][Oo][Uu][Rr][Ss])$"
        })
    }
}

/// A named strategy: canary or blue/green.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Strategy {
    /// A canary strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<Canary>,
    /// A blue/green strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<BlueGreen>,
    /// Other strategy kinds; accepted and ignored.
    #[serde(flatten)]
    pub other: IndexMap<String, Value>,
}

/// A canary strategy: steps run in order.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Canary {
    /// The steps, in order.
    #[serde(default)]
    pub steps: Vec<StrategyStep>,
    /// Other canary keys; accepted and ignored.
    #[serde(flatten)]
    pub other: IndexMap<String, Value>,
}

/// A blue/green strategy.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlueGreen {
    /// The service that receives production traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_service: Option<String>,
    /// The service that exposes the new version before the switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_service: Option<String>,
    /// Tasks run in parallel before traffic moves; all must succeed.
    #[serde(default)]
    pub redirect_traffic_after: Vec<StrategyStep>,
    /// Tasks run before the old version is shut down; not handled by hookgate.
    #[serde(default)]
    pub shut_down_old_version_after: Vec<StrategyStep>,
    /// Other blue/green keys; accepted and ignored.
    #[serde(flatten)]
    pub other: IndexMap<String, Value>,
}

/// `runWebhook:` runs one webhook by name.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunWebhook {
    /// The `name` of an entry under `webhooks`.
    pub name: String,
    /// Values for `{{ context.* }}` in the webhook's templates (over the run's `--context`).
    /// Armory's documentation writes an empty one as `[]`; that is accepted too.
    #[serde(
        default,
        deserialize_with = "context_map",
        skip_serializing_if = "IndexMap::is_empty"
    )]
    #[schemars(with = "ContextSchema")]
    pub context: IndexMap<String, Value>,
    /// A condition such as `{{ steps['Call Endpoint'].body.ok }}`: the step is skipped when it
    /// is false (hookgate's extension, like Spinnaker's "conditional on expression").
    #[serde(default, rename = "if", skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
}

/// Schema of `context`: a map, or Armory's empty list.
#[derive(JsonSchema)]
#[allow(dead_code)]
#[serde(untagged)]
enum ContextSchema {
    Map(IndexMap<String, Value>),
    EmptyList(Vec<Value>),
}

fn context_map<'de, D: Deserializer<'de>>(d: D) -> Result<IndexMap<String, Value>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(IndexMap::new()),
        Value::Object(map) => Ok(map.into_iter().collect()),
        Value::Array(items) if items.is_empty() => Ok(IndexMap::new()),
        other => Err(serde::de::Error::custom(format!(
            "context must be a map of names to values, found {}",
            json_kind(&other)
        ))),
    }
}

/// A webhook: Armory's fields, then hookgate's extensions.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Webhook {
    /// Unique name that `runWebhook` refers to.
    pub name: String,
    /// HTTP method (`POST` when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<HttpMethod>,
    /// The URL, a template. Not needed for `repositoryDispatch`/`workflowDispatch` webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri_template: Option<String>,
    /// `direct` (the default) or `remoteNetworkAgent` (called directly too, with a warning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<NetworkMode>,
    /// The Armory Remote Network Agent; accepted, has no meaning on a runner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_identifier: Option<String>,
    /// Request headers; values are templates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<Header>,
    /// The request body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_template: Option<BodyTemplate>,
    /// How many times a failed request is retried (connection errors, 5xx, 429, `retryStatusCodes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_count: Option<u32>,
    /// The service handles a repeated request (it honours the `Idempotency-Key` header hookgate
    /// sends): a request whose connection broke or timed out after it was sent is sent again.
    /// Without it, only GET, HEAD, PUT, DELETE and OPTIONS requests are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotent: Option<bool>,
    /// Armory's switch: `true` means do not wait for a callback (the same as `waitFor: none`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_callback: Option<bool>,
    /// How the result is known: `callback` (default), `none`, `poll` or `workflowRun`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_for: Option<WaitFor>,
    /// Polling, Spinnaker's "wait for completion" (with `waitFor: poll`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll: Option<PollConfig>,
    /// How the callback must authenticate (with `waitFor: callback`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback: Option<CallbackConfig>,
    /// How long the step may take, such as `30m` (default `24h`, as Armory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationSpec>,
    /// Further status codes that are retried: by status polls, and by the call too unless
    /// `webhookRetryStatusCodes` is set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retry_status_codes: Vec<u16>,
    /// Further status codes that retry the call only (Spinnaker's name); with it,
    /// `retryStatusCodes` is the status polls' alone, as in Spinnaker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_retry_status_codes: Option<Vec<u16>>,
    /// Status codes of the call that end the step at once, without retry (Spinnaker's default
    /// when absent: 504, unless `retryStatusCodes` lists it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_fast_status_codes: Option<Vec<u16>>,
    /// A request sent, best effort, when a started step is cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel: Option<CancelRequest>,
    /// Send a `repository_dispatch` event to a GitHub repository instead of `uriTemplate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_dispatch: Option<RepositoryDispatch>,
    /// Start a GitHub Actions workflow (`workflow_dispatch`) instead of `uriTemplate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_dispatch: Option<WorkflowDispatch>,
}

/// Whether `name` can be a step output's name: a letter or `_`, then letters, digits, `_` or `-`
/// (GitHub's rule), at most [`MAX_OUTPUT_NAME`] bytes.
pub fn is_output_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= MAX_OUTPUT_NAME
        && chars
            .next()
            .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The longest output name, in bytes.
pub const MAX_OUTPUT_NAME: usize = 100;

/// Spinnaker's `failFastStatusCodes` when a webhook has none: a gateway timeout ends the call.
pub const DEFAULT_FAIL_FAST_STATUS_CODES: [u16; 1] = [504];

impl Webhook {
    /// The statuses that end the call at once: `failFastStatusCodes`, or when it is absent
    /// [`DEFAULT_FAIL_FAST_STATUS_CODES`] less those the call retries.
    pub fn fail_fast_codes(&self) -> Vec<u16> {
        let call_retries = self.call_retry_codes();
        match &self.fail_fast_status_codes {
            Some(codes) => codes.clone(),
            None => DEFAULT_FAIL_FAST_STATUS_CODES
                .into_iter()
                .filter(|code| !call_retries.contains(code))
                .collect(),
        }
    }

    /// The further statuses that retry the call: `webhookRetryStatusCodes`, else
    /// `retryStatusCodes`.
    pub fn call_retry_codes(&self) -> &[u16] {
        self.webhook_retry_status_codes
            .as_deref()
            .unwrap_or(&self.retry_status_codes)
    }

    /// For `networkMode: remoteNetworkAgent`, the agent named as ` (agent `ID`)` (empty without
    /// `agentIdentifier`); `None` for a direct call.
    pub fn remote_network_agent(&self) -> Option<String> {
        (self.network_mode == Some(NetworkMode::RemoteNetworkAgent)).then(|| {
            self.agent_identifier
                .as_deref()
                .map(|agent| format!(" (agent `{agent}`)"))
                .unwrap_or_default()
        })
    }

    /// How the result is known: `waitFor`, else `none` when Armory's `disableCallback` is true,
    /// else `callback` (Armory's default).
    pub(crate) fn wait_mode(&self) -> WaitFor {
        match (self.wait_for, self.disable_callback) {
            (Some(mode), _) => mode,
            (None, Some(true)) => WaitFor::None,
            (None, _) => WaitFor::Callback,
        }
    }

    /// The step's time limit: `timeout`, else Armory's 24 hours.
    pub(crate) fn timeout_or_default(&self) -> Duration {
        self.timeout.map(|t| t.0).unwrap_or(DEFAULT_WEBHOOK_TIMEOUT)
    }
}

/// How long a webhook may take when it sets no `timeout` (Armory's 24 hours).
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// An HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    /// GET
    Get,
    /// POST
    Post,
    /// PUT
    Put,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
    /// HEAD
    Head,
}

impl HttpMethod {
    /// The method as it goes on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Delete => "DELETE",
            HttpMethod::Head => "HEAD",
        }
    }
}

impl fmt::Display for HttpMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Armory's network modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum NetworkMode {
    /// Call the URL directly from the runner.
    Direct,
    /// Through an Armory Remote Network Agent: hookgate calls directly, from a machine inside that
    /// network.
    RemoteNetworkAgent,
}

/// A request header.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// The header name.
    pub key: String,
    /// The header value, a template.
    pub value: String,
}

/// A request body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BodyTemplate {
    /// The body, a template.
    pub inline: String,
}

/// How a webhook's result is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum WaitFor {
    /// Wait for a signed callback through the relay (Armory's way; the default).
    Callback,
    /// A 2xx answer is success (Spinnaker without "wait for completion").
    None,
    /// Poll a status URL (Spinnaker's "wait for completion").
    Poll,
    /// Wait for the conclusion of the workflow run a `workflowDispatch` started.
    WorkflowRun,
}

impl WaitFor {
    /// The name as written in the deployment file.
    pub fn as_str(self) -> &'static str {
        match self {
            WaitFor::Callback => "callback",
            WaitFor::None => "none",
            WaitFor::Poll => "poll",
            WaitFor::WorkflowRun => "workflowRun",
        }
    }
}

/// Where the status URL comes from (Spinnaker's three techniques).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum StatusUrlResolution {
    /// GET the webhook's own URL.
    #[default]
    GetMethod,
    /// The `Location` header of the webhook's answer.
    LocationHeader,
    /// A JSONPath (`statusUrlJsonPath`) into the webhook's answer.
    WebhookResponse,
}

/// Polling settings, with Spinnaker's names.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PollConfig {
    /// Where the status URL comes from.
    #[serde(default)]
    pub status_url_resolution: StatusUrlResolution,
    /// JSONPath to the status URL in the webhook's answer (`webhookResponse`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_url_json_path: Option<String>,
    /// JSONPath to the status value; without one, a 2xx answer is success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_json_path: Option<String>,
    /// Status values that mean success (case-insensitive).
    #[serde(default, skip_serializing_if = "StatusList::is_empty")]
    pub success_statuses: StatusList,
    /// Status values that mean cancelled.
    #[serde(default, skip_serializing_if = "StatusList::is_empty")]
    pub canceled_statuses: StatusList,
    /// Status values that mean failure.
    #[serde(default, skip_serializing_if = "StatusList::is_empty")]
    pub terminal_statuses: StatusList,
    /// JSONPath to a progress message shown while waiting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_json_path: Option<String>,
    /// Delay before the first poll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_before_monitor: Option<DurationSpec>,
    /// Time between polls (default: 1 s for the first minute, then 15 s, as Spinnaker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<DurationSpec>,
    /// Transient status-check failures in a row (no answer, 5xx, 429, `retryStatusCodes`) after
    /// which the step fails; a 2xx answer starts the count again (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_transient_errors: Option<u32>,
    /// Outputs read from the last status answer, by name: an RFC 9535 JSONPath each, which must
    /// select one value (text as it is, anything else as its JSON text).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub outputs: IndexMap<String, String>,
}

/// A list of status values, written as a YAML list or as Spinnaker's comma-separated string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusList(pub Vec<String>);

impl StatusList {
    /// Whether no value is listed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `value` is listed, ignoring case.
    pub fn contains(&self, value: &str) -> bool {
        self.0.iter().any(|s| s.eq_ignore_ascii_case(value))
    }
}

impl Serialize for StatusList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for StatusList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            List(Vec<String>),
            Csv(String),
        }
        Ok(
            match Repr::deserialize(d).map_err(|_| {
                serde::de::Error::custom("expected a list of strings or a comma-separated string")
            })? {
                Repr::List(items) => {
                    StatusList(items.into_iter().map(|s| s.trim().to_owned()).collect())
                }
                Repr::Csv(text) => StatusList(
                    text.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect(),
                ),
            },
        )
    }
}

impl JsonSchema for StatusList {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "StatusList".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Status values: a list, or a comma-separated string as in Spinnaker.",
            "anyOf": [
                {"type": "array", "items": {"type": "string"}},
                {"type": "string"}
            ]
        })
    }
}

/// How a callback proves it comes from the service that was called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum CallbackAuthMode {
    /// `Authorization: Bearer <token>` with the slot's token (`{{ callback.token }}`), as Armory.
    #[default]
    Bearer,
    /// An HMAC signature of the body with a shared secret.
    Hmac,
}

/// HMAC signature schemes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum HmacScheme {
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>`.
    #[default]
    Standard,
    /// GitHub's form: `X-Hub-Signature-256: sha256=<hex>`.
    Github,
}

/// Callback authentication.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CallbackConfig {
    /// `bearer` (default) or `hmac`.
    #[serde(default)]
    pub auth: CallbackAuthMode,
    /// The HMAC secret, a template such as `{{ secrets.callback_secret }}` (with `auth: hmac`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// `standard` (default) or `github` (with `auth: hmac`).
    #[serde(default)]
    pub scheme: HmacScheme,
    /// Take a signed verdict that names no `slot` (with `auth: hmac`). By default a verdict
    /// must name this step's slot, `{{ callback.slot }}`, inside the signed body, so that a
    /// verdict signed for another run (with the same secret) never counts here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_unbound: Option<bool>,
}

/// A request sent when a started step is cancelled.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CancelRequest {
    /// HTTP method (`POST` when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<HttpMethod>,
    /// The URL, a template.
    pub uri_template: String,
    /// Request headers; values are templates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<Header>,
    /// The request body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_template: Option<BodyTemplate>,
}

/// A `repository_dispatch` event sent to a GitHub repository.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RepositoryDispatch {
    /// `owner/name` of the repository to dispatch into (a template).
    pub repository: String,
    /// The event type (at most 100 characters).
    pub event_type: String,
    /// The client payload (at most 10 top-level keys); string values are templates.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub client_payload: IndexMap<String, Value>,
    /// An event type (a template) dispatched with the same client payload when the gate ends
    /// before its result (cancelled, timed out, or a failing sibling in a parallel group), so
    /// the other side can stop what it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_event_type: Option<String>,
}

/// A `workflow_dispatch` of a GitHub Actions workflow.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkflowDispatch {
    /// `owner/name` of the repository (a template; the current repository when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// The workflow file name (such as `tests.yml`) or id.
    pub workflow: String,
    /// The git ref to run on (a template).
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// Workflow inputs (at most 25); string values are templates.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub inputs: IndexMap<String, Value>,
}

/// A duration written as `90s`, `5m`, `1h 30m`, or a number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationSpec(pub Duration);

impl Serialize for DurationSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

impl<'de> Deserialize<'de> for DurationSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Number(n) => n
                .as_u64()
                .map(|secs| DurationSpec(Duration::from_secs(secs)))
                .ok_or_else(|| {
                    serde::de::Error::custom(
                        "a duration must be a whole number of seconds or text such as `30s`",
                    )
                }),
            Value::String(text) => parse_duration(&text)
                .map(DurationSpec)
                .map_err(serde::de::Error::custom),
            other => Err(serde::de::Error::custom(format!(
                "a duration must be text such as `30s` or `5m`, found {}",
                json_kind(&other)
            ))),
        }
    }
}

impl JsonSchema for DurationSpec {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A duration such as `30s`, `5m` or `1h 30m`, or a number of seconds.",
            "anyOf": [
                {"type": "string", "pattern": "^\\s*[0-9]+\\s*[a-zA-Z]+(\\s*[0-9]+\\s*[a-zA-Z]+)*\\s*$"},
                {"type": "integer", "minimum": 0}
            ]
        })
    }
}

/// Parses `30s`, `5m`, `1h 30m` (humantime's syntax) with a message that says what is accepted.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|err| {
        format!("`{text}` is not a duration ({err}); write it as `30s`, `5m`, `2h` or `1h 30m`")
    })
}

/// A short name for the kind of a JSON value, for messages.
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}
