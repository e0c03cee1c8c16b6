//! The job's log: each step's lines inside a `::group::`, and an `::error::` (failed, timed
//! out) or `::warning::` (cancelled) annotation for every step that did not pass.
//!
//! A step that runs alone is written as it goes, so a user watching the job sees it wait. Steps
//! that run in parallel are written whole when each ends, because groups cannot interleave.

use std::collections::HashMap;

use futures::future::BoxFuture;
use hookgate_engine::{Conclusion, Event, Reporter, StepInfo, StepOutcome};
use tokio::sync::Mutex;

use crate::text::{cut_to_chars, short_duration, wait_mode};

/// The longest message put in an `::error::` or `::warning::` annotation.
const ANNOTATION_CHARS: usize = 1_000;
use crate::workflow_commands::{END_GROUP, emit, error_line, group_line, untrusted, warning_line};

#[derive(Debug, Default)]
struct Log {
    target: String,
    group_sizes: HashMap<usize, usize>,
    buffered: HashMap<String, Vec<String>>,
}

/// Writes a run's steps to the job's log with workflow commands.
#[derive(Debug, Default)]
pub struct ActionsLogReporter {
    log: Mutex<Log>,
}

impl ActionsLogReporter {
    /// A reporter writing to stdout.
    pub fn new() -> Self {
        Self::default()
    }

    fn alone(log: &Log, step: &StepInfo) -> bool {
        log.group_sizes.get(&step.group).copied().unwrap_or(1) <= 1
    }

    fn header(step: &StepInfo) -> String {
        group_line(&format!(
            "hookgate: {} (waits by {})",
            step.name,
            wait_mode(step)
        ))
    }

    async fn handle(&self, event: &Event) {
        let mut log = self.log.lock().await;
        match event {
            Event::RunStarted { target, steps, .. } => {
                log.target = target.clone();
                for step in steps {
                    *log.group_sizes.entry(step.group).or_insert(0) += 1;
                }
            }
            Event::StepStarted { step } => {
                if Self::alone(&log, step) {
                    emit(&[Self::header(step)]);
                } else {
                    log.buffered
                        .insert(step.name.clone(), vec![Self::header(step)]);
                }
            }
            Event::StepProgress {
                step,
                message,
                percent,
            } => {
                let line = match percent {
                    Some(p) => format!("{p}% {message}"),
                    None => message.clone(),
                };
                match log.buffered.get_mut(&step.name) {
                    Some(lines) => lines.extend(untrusted(vec![line])),
                    None => emit(&untrusted(vec![line])),
                }
            }
            Event::StepFinished { step, outcome } => {
                let mut lines = log.buffered.remove(&step.name).unwrap_or_else(|| {
                    if Self::alone(&log, step) && outcome.started_at.is_some() {
                        Vec::new()
                    } else {
                        // Never started (skipped): a group of its own.
                        vec![Self::header(step)]
                    }
                });
                lines.push(format!(
                    "{} after {}",
                    outcome.conclusion,
                    short_duration(outcome.duration)
                ));
                lines.extend(untrusted(
                    outcome.message.lines().map(str::to_owned).collect(),
                ));
                lines.push(END_GROUP.to_owned());
                if let Some(annotation) = annotation(&log.target, step, outcome) {
                    lines.push(annotation);
                }
                emit(&lines);
            }
            Event::RunFinished { .. } => {}
        }
    }
}

fn annotation(target: &str, step: &StepInfo, outcome: &StepOutcome) -> Option<String> {
    let title = format!("hookgate / {target} / {}", step.name);
    // Annotations are short notes in the run's overview; the group above has the whole text.
    let message = if outcome.message.trim().is_empty() {
        format!("{} {}", step.name, outcome.conclusion)
    } else {
        cut_to_chars(&outcome.message, ANNOTATION_CHARS)
    };
    match outcome.conclusion {
        Conclusion::Failure | Conclusion::TimedOut => Some(error_line(&title, &message)),
        Conclusion::Cancelled => Some(warning_line(&title, &message)),
        Conclusion::Success | Conclusion::Skipped => None,
    }
}

impl Reporter for ActionsLogReporter {
    fn report(&self, event: &Event) -> BoxFuture<'_, ()> {
        let event = event.clone();
        Box::pin(async move { self.handle(&event).await })
    }
}
