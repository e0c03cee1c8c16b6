//! The job's log: each step's lines inside a `::group::`, and an `::error::` (failed, timed
//! out) or `::warning::` (cancelled) annotation for every step that did not pass.
//!
//! A step that runs alone is written as it goes, so a user watching the job sees it wait. Steps
//! that run in parallel are written whole when each ends, because groups cannot interleave.

use std::collections::{HashMap, HashSet};

use futures::future::BoxFuture;
use hookgate_engine::{Conclusion, Event, Reporter, StepInfo, StepOutcome};
use tokio::sync::Mutex;

use crate::text::{cut_to_chars, short_duration, wait_mode};
use crate::workflow_commands::{END_GROUP, emit, error_line, group_line, untrusted, warning_line};

/// The longest message put in an `::error::` or `::warning::` annotation.
const ANNOTATION_CHARS: usize = 1_000;

#[derive(Debug, Default)]
struct Log {
    target: String,
    group_sizes: HashMap<usize, usize>,
    /// Steps whose group is open in the log now.
    streaming: HashSet<String>,
    /// Lines of parallel steps, written when each ends.
    buffered: HashMap<String, Vec<String>>,
}

/// Where finished lines go: stdout, or a test's buffer.
type LineSink = Box<dyn Fn(&[String]) + Send + Sync>;

/// Writes a run's steps to the job's log with workflow commands.
pub struct ActionsLogReporter {
    log: Mutex<Log>,
    sink: LineSink,
}

impl Default for ActionsLogReporter {
    fn default() -> Self {
        Self::new()
    }
}

impl ActionsLogReporter {
    /// A reporter writing to stdout.
    pub fn new() -> Self {
        Self::with_sink(Box::new(|lines: &[String]| emit(lines)))
    }

    /// A reporter handing its lines to `sink`, a block at a time.
    pub fn with_sink(sink: LineSink) -> Self {
        ActionsLogReporter {
            log: Mutex::new(Log::default()),
            sink,
        }
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
                    (self.sink)(&[Self::header(step)]);
                    log.streaming.insert(step.name.clone());
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
                    None => (self.sink)(&untrusted(vec![line])),
                }
            }
            Event::StepFinished { step, outcome } => {
                let mut lines = match log.buffered.remove(&step.name) {
                    Some(lines) => lines,
                    None if log.streaming.remove(&step.name) => Vec::new(),
                    // Never started (skipped, or not run): a group of its own.
                    None => vec![Self::header(step)],
                };
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
                (self.sink)(&lines);
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::{Arc, Mutex as StdMutex};
    use std::time::{Duration, SystemTime};

    use super::*;

    fn step(name: &str, index: usize, group: usize) -> StepInfo {
        StepInfo {
            name: name.to_owned(),
            index,
            group,
            kind: "webhook".to_owned(),
            wait_mode: "poll".to_owned(),
        }
    }

    fn finished(step: &StepInfo, conclusion: Conclusion, message: &str) -> Event {
        Event::StepFinished {
            step: step.clone(),
            outcome: StepOutcome::new(
                conclusion,
                message.to_owned(),
                Some(SystemTime::now()),
                Duration::from_secs(2),
            ),
        }
    }

    #[tokio::test]
    async fn parallel_steps_do_not_interleave_and_failures_are_annotated() {
        let lines: Arc<StdMutex<Vec<String>>> = Arc::default();
        let sink_lines = Arc::clone(&lines);
        let reporter = ActionsLogReporter::with_sink(Box::new(move |block: &[String]| {
            sink_lines.lock().unwrap().extend(block.iter().cloned());
        }));
        let (a, b, c) = (step("A", 0, 0), step("B", 1, 0), step("C", 2, 1));
        let progress = |s: &StepInfo, m: &str| Event::StepProgress {
            step: s.clone(),
            message: m.to_owned(),
            percent: None,
        };
        let events = vec![
            Event::RunStarted {
                target: "staging".to_owned(),
                phase: "afterDeployment".to_owned(),
                steps: vec![a.clone(), b.clone(), c.clone()],
            },
            Event::StepStarted { step: a.clone() },
            Event::StepStarted { step: b.clone() },
            progress(&a, "a is polling"),
            progress(&b, "::add-mask::b"),
            finished(&b, Conclusion::Failure, "b broke"),
            finished(&a, Conclusion::Success, "a done"),
            Event::StepStarted { step: c.clone() },
            progress(&c, "c is polling"),
            finished(&c, Conclusion::Cancelled, ""),
        ];
        for event in &events {
            reporter.report(event).await;
        }
        let lines = lines.lock().unwrap().clone();
        let b_start = lines
            .iter()
            .position(|l| l == "::group::hookgate: B (waits by poll)")
            .unwrap();
        let a_start = lines
            .iter()
            .position(|l| l == "::group::hookgate: A (waits by poll)")
            .unwrap();
        assert!(b_start < a_start, "B ended first: {lines:#?}");
        // B's block is whole: header, its (fenced) progress, verdict, end, annotation.
        let fence = lines[b_start + 1]
            .strip_prefix("::stop-commands::")
            .unwrap();
        let resume = format!("::{fence}::");
        assert_eq!(
            lines[b_start + 2..b_start + 8],
            [
                "::add-mask::b",
                &resume,
                "failure after 2s",
                "b broke",
                END_GROUP,
                "::error title=hookgate / staging / B::b broke",
            ]
        );
        assert_eq!(lines[a_start + 1], "a is polling");
        // C runs alone: streamed, then closed once.
        let c_start = lines
            .iter()
            .position(|l| l == "::group::hookgate: C (waits by poll)")
            .unwrap();
        assert_eq!(
            lines[c_start + 1..c_start + 5],
            [
                "c is polling",
                "cancelled after 2s",
                END_GROUP,
                "::warning title=hookgate / staging / C::C cancelled",
            ]
        );
        let groups = lines.iter().filter(|l| l.starts_with("::group::")).count();
        let ends = lines.iter().filter(|l| *l == END_GROUP).count();
        assert_eq!((groups, ends), (3, 3));
    }
}
