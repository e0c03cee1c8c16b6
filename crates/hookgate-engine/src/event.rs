//! Events the engine emits while it runs a plan, and the reporters that listen to them.
//!
//! The engine knows nothing of who listens: the terminal, GitHub check runs, deployment statuses
//! and the job summary are all reporters. Every message in an event has already had secret values
//! masked, so a reporter may print or send it as it is.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use serde::Serialize;

/// How a step ended. The names are GitHub's check-run conclusions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Conclusion {
    /// The gate passed.
    Success,
    /// The gate failed (a `success: false` callback, a terminal status, an HTTP error, ...).
    Failure,
    /// The step was cancelled (the run was stopped, or a parallel sibling failed).
    Cancelled,
    /// The step ran out of time.
    TimedOut,
    /// The step did not run (its `if:` was false, or hookgate does not handle it).
    Skipped,
}

impl Conclusion {
    /// The snake_case name, as GitHub spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Conclusion::Success => "success",
            Conclusion::Failure => "failure",
            Conclusion::Cancelled => "cancelled",
            Conclusion::TimedOut => "timed_out",
            Conclusion::Skipped => "skipped",
        }
    }

    /// Whether this conclusion lets the run go on.
    pub fn is_passing(self) -> bool {
        matches!(self, Conclusion::Success | Conclusion::Skipped)
    }
}

impl fmt::Display for Conclusion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a step is, for reporters that show it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepInfo {
    /// The step's name, unique within the run (the webhook's name, `#2` when repeated).
    pub name: String,
    /// Its position in the plan, from 0.
    pub index: usize,
    /// The group it belongs to, from 0 (steps of one group run in parallel).
    pub group: usize,
    /// `webhook`, `pause` or the key of a step hookgate does not handle.
    pub kind: String,
    /// How the result is known: `callback`, `none`, `poll`, `workflowRun`, or empty.
    pub wait_mode: String,
}

/// Something that happened during a run.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "camelCase")]
pub enum Event {
    /// The run begins: every step of the plan, in order.
    RunStarted {
        /// The target's name.
        target: String,
        /// The phase.
        phase: String,
        /// All steps.
        steps: Vec<StepInfo>,
    },
    /// A step began.
    StepStarted {
        /// The step.
        step: StepInfo,
    },
    /// A step has news while it waits (a polled status, a callback that failed verification, ...).
    StepProgress {
        /// The step.
        step: StepInfo,
        /// What happened, in one line of Markdown.
        message: String,
        /// Percent complete, when known.
        #[serde(skip_serializing_if = "Option::is_none")]
        percent: Option<u8>,
    },
    /// A step ended.
    StepFinished {
        /// The step.
        step: StepInfo,
        /// How it ended, and why.
        outcome: StepOutcome,
    },
    /// The run ended.
    RunFinished {
        /// The run's overall conclusion: the first non-passing step's, or success.
        conclusion: Conclusion,
        /// Every step's outcome, in plan order.
        outcomes: Vec<(StepInfo, StepOutcome)>,
    },
}

/// How one step ended.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepOutcome {
    /// The conclusion.
    pub conclusion: Conclusion,
    /// Why, in Markdown: the callback's `mdMessage`, the polled status, the HTTP error.
    pub message: String,
    /// When it started (absent for steps that never started).
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_system_time")]
    pub started_at: Option<SystemTime>,
    /// How long it took.
    #[serde(with = "duration_millis")]
    pub duration: Duration,
    /// The `outputs` its callbacks returned (see [`crate::outputs`]), masked in events.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, String>,
}

impl StepOutcome {
    /// An outcome without outputs.
    pub fn new(
        conclusion: Conclusion,
        message: String,
        started_at: Option<SystemTime>,
        duration: Duration,
    ) -> Self {
        StepOutcome {
            conclusion,
            message,
            started_at,
            duration,
            outputs: BTreeMap::new(),
        }
    }
}

mod duration_millis {
    use std::time::Duration;

    use serde::Serializer;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

mod opt_system_time {
    use std::time::{SystemTime, UNIX_EPOCH};

    use serde::Serializer;

    pub fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match t.and_then(|t| t.duration_since(UNIX_EPOCH).ok()) {
            Some(d) => s.serialize_u64(d.as_secs()),
            None => s.serialize_none(),
        }
    }
}

/// Listens to a run's events. Reporters must not fail the run: they log their own errors.
pub trait Reporter: Send + Sync {
    /// Called for every event, in order. May block briefly (an HTTP call to GitHub); the engine
    /// calls reporters from a task of their own, so a slow reporter does not delay a gate.
    fn report(&self, event: &Event) -> futures::future::BoxFuture<'_, ()>;
}
