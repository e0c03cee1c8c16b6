//! Plans: the ordered steps of one target and phase, as the engine runs them.
//!
//! A plan is a list of groups run one after the other; the steps of a group run in parallel
//! (only blue/green `redirectTrafficAfter` makes groups of more than one). Steps that hookgate
//! cannot act on (`setWeight`, `analysis`, ...) stay in the plan as `NotHandled`, so they are
//! reported rather than silently dropped.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use indexmap::IndexMap;
use serde::Serialize;
use serde_json::Value;

use crate::model::{DeploymentFile, Pause, RunWebhook, StrategyStep, WaitFor, Webhook};

/// The part of a target's deployment whose gates are run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// `constraints.beforeDeployment`.
    BeforeDeployment,
    /// `constraints.afterDeployment`.
    AfterDeployment,
    /// The target's strategy: canary `steps`, or blue/green `redirectTrafficAfter`.
    Strategy,
}

impl Phase {
    /// The kebab-case name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::BeforeDeployment => "before-deployment",
            Phase::AfterDeployment => "after-deployment",
            Phase::Strategy => "strategy",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Phase {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "before-deployment" | "beforeDeployment" => Ok(Phase::BeforeDeployment),
            "after-deployment" | "afterDeployment" => Ok(Phase::AfterDeployment),
            "strategy" => Ok(Phase::Strategy),
            other => Err(format!(
                "unknown phase `{other}`: use before-deployment, after-deployment or strategy"
            )),
        }
    }
}

/// The steps of one target and phase.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The target's name.
    pub target: String,
    /// The phase.
    pub phase: Phase,
    /// Groups, run in order; the steps of one group run in parallel.
    pub groups: Vec<StepGroup>,
}

impl Plan {
    /// Every step, in order.
    pub fn steps(&self) -> impl Iterator<Item = &PlannedStep> {
        self.groups.iter().flat_map(|g| g.steps.iter())
    }
}

/// Steps that run together.
#[derive(Debug, Clone, Serialize)]
pub struct StepGroup {
    /// Whether the steps run in parallel (all must succeed; the first failure cancels the rest).
    pub parallel: bool,
    /// The steps.
    pub steps: Vec<PlannedStep>,
}

/// One step of a plan.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum PlannedStep {
    /// Run a webhook.
    Webhook(Box<WebhookCall>),
    /// Wait for a fixed time.
    Pause {
        /// How long.
        #[serde(with = "humantime_serde_secs")]
        duration: Duration,
    },
    /// Something hookgate does not do (traffic shifting, analysis, manual approval, ...).
    NotHandled {
        /// The step's key in the file, such as `setWeight`.
        step: String,
        /// Why hookgate leaves it alone.
        reason: String,
    },
}

/// A `runWebhook` resolved against its webhook: what the engine runs without checking again.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookCall {
    /// The step's name (the webhook's name; unique within a plan by a `#2` suffix when repeated).
    pub step_name: String,
    /// How the result is known: `waitFor`, with Armory's `disableCallback: true` meaning `none`
    /// and `callback` the default.
    pub wait: WaitFor,
    /// The step's time limit: the webhook's `timeout`, or Armory's 24 hours.
    #[serde(with = "humantime_serde_secs")]
    pub timeout: Duration,
    /// The webhook, as declared.
    pub webhook: Webhook,
    /// The step's own `context`.
    pub context: IndexMap<String, Value>,
    /// The `if:` condition, unrendered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
}

mod humantime_serde_secs {
    use std::time::Duration;

    use serde::Serializer;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

/// Why a plan cannot be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    /// The target is not in the file.
    #[error("no target named `{target}` in the deployment file (targets: {known})")]
    UnknownTarget {
        /// The name asked for.
        target: String,
        /// The targets the file has, comma-separated.
        known: String,
    },
    /// The target names no strategy, or one that does not exist.
    #[error("target `{target}` has no strategy to run: {reason}")]
    NoStrategy {
        /// The target.
        target: String,
        /// What is missing.
        reason: String,
    },
    /// A `runWebhook` names no webhook (validation reports this with a location first).
    #[error("runWebhook `{0}` names no webhook in `webhooks`")]
    UnknownWebhook(String),
}

/// Builds the plan of `target` and `phase`. The file should have passed validation.
pub fn plan(file: &DeploymentFile, target: &str, phase: Phase) -> Result<Plan, PlanError> {
    let Some(spec) = file.targets.get(target) else {
        return Err(PlanError::UnknownTarget {
            target: target.to_owned(),
            known: known_names(file.targets.keys()),
        });
    };
    let mut webhooks = HashMap::with_capacity(file.webhooks.len());
    for webhook in &file.webhooks {
        // Validation refuses repeated names; should one get here, the first wins.
        webhooks.entry(webhook.name.as_str()).or_insert(webhook);
    }
    let mut builder = PlanBuilder {
        webhooks,
        groups: Vec::new(),
        seen: IndexMap::new(),
    };
    match phase {
        Phase::BeforeDeployment | Phase::AfterDeployment => {
            let steps = match (&spec.constraints, phase) {
                (None, _) => &[][..],
                (Some(c), Phase::BeforeDeployment) => &c.before_deployment[..],
                (Some(c), _) => &c.after_deployment[..],
            };
            for step in steps {
                let planned =
                    builder.step(step.run_webhook.as_ref(), step.pause.as_ref(), || {
                        step.analysis.as_ref().map(|_| "analysis".to_owned())
                    })?;
                builder.push_sequential(planned);
            }
        }
        Phase::Strategy => {
            let Some(strategy_name) = &spec.strategy else {
                return Err(PlanError::NoStrategy {
                    target: target.to_owned(),
                    reason: "it has no `strategy` key".to_owned(),
                });
            };
            let Some(strategy) = file.strategies.get(strategy_name) else {
                return Err(PlanError::NoStrategy {
                    target: target.to_owned(),
                    reason: format!(
                        "strategy `{strategy_name}` is not under `strategies` (strategies: {})",
                        known_names(file.strategies.keys())
                    ),
                });
            };
            if let Some(canary) = &strategy.canary {
                for step in &canary.steps {
                    let planned = builder.strategy_step(step)?;
                    builder.push_sequential(planned);
                }
            } else if let Some(blue_green) = &strategy.blue_green {
                let mut steps = Vec::new();
                for step in &blue_green.redirect_traffic_after {
                    steps.push(builder.strategy_step(step)?);
                }
                if !steps.is_empty() {
                    builder.groups.push(StepGroup {
                        parallel: steps.len() > 1,
                        steps,
                    });
                }
            }
        }
    }
    Ok(Plan {
        target: target.to_owned(),
        phase,
        groups: builder.groups,
    })
}

struct PlanBuilder<'a> {
    /// The file's webhooks by name.
    webhooks: HashMap<&'a str, &'a Webhook>,
    groups: Vec<StepGroup>,
    /// How many times each webhook has been used, for unique step names.
    seen: IndexMap<String, usize>,
}

impl PlanBuilder<'_> {
    fn push_sequential(&mut self, step: PlannedStep) {
        self.groups.push(StepGroup {
            parallel: false,
            steps: vec![step],
        });
    }

    fn strategy_step(&mut self, step: &StrategyStep) -> Result<PlannedStep, PlanError> {
        self.step(step.run_webhook.as_ref(), step.pause.as_ref(), || {
            if step.set_weight.is_some() {
                Some("setWeight".to_owned())
            } else if step.analysis.is_some() {
                Some("analysis".to_owned())
            } else if step.expose_services.is_some() {
                Some("exposeServices".to_owned())
            } else {
                step.other.keys().next().cloned()
            }
        })
    }

    fn step(
        &mut self,
        run: Option<&RunWebhook>,
        pause: Option<&Pause>,
        other: impl FnOnce() -> Option<String>,
    ) -> Result<PlannedStep, PlanError> {
        if let Some(run) = run {
            return self.webhook_step(run);
        }
        if let Some(pause) = pause {
            return Ok(pause_step(pause));
        }
        let step = other().unwrap_or_else(|| "(empty step)".to_owned());
        let reason = match step.as_str() {
            "setWeight" => "traffic shifting belongs to the deployment tool",
            "analysis" => "canary analysis belongs to the deployment tool",
            "exposeServices" => "exposing services belongs to the deployment tool",
            _ => "hookgate only runs `runWebhook` and timed `pause` steps",
        };
        Ok(PlannedStep::NotHandled {
            step,
            reason: reason.to_owned(),
        })
    }

    fn webhook_step(&mut self, run: &RunWebhook) -> Result<PlannedStep, PlanError> {
        let webhook = self
            .webhooks
            .get(run.name.as_str())
            .ok_or_else(|| PlanError::UnknownWebhook(run.name.clone()))?;
        let count = self.seen.entry(run.name.clone()).or_insert(0);
        *count += 1;
        let step_name = if *count == 1 {
            run.name.clone()
        } else {
            format!("{}#{}", run.name, count)
        };
        Ok(PlannedStep::Webhook(Box::new(WebhookCall {
            step_name,
            wait: webhook.wait_mode(),
            timeout: webhook.timeout_or_default(),
            webhook: (*webhook).clone(),
            context: run.context.clone(),
            condition: run.condition.clone(),
        })))
    }
}

fn pause_step(pause: &Pause) -> PlannedStep {
    match (pause.duration, pause.until_approved) {
        (Some(amount), _) => PlannedStep::Pause {
            duration: pause.unit.unwrap_or_default().of(amount),
        },
        (None, Some(true)) => PlannedStep::NotHandled {
            step: "pause".to_owned(),
            reason: "a manual approval cannot be given to a workflow step; use a GitHub environment with required reviewers".to_owned(),
        },
        (None, _) => PlannedStep::NotHandled {
            step: "pause".to_owned(),
            reason: "a pause without `duration` has nothing to wait for".to_owned(),
        },
    }
}

fn known_names<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}
