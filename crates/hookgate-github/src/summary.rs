//! The job summary and the step's outputs, written when the run ends.
//!
//! `$GITHUB_STEP_SUMMARY` gets a Markdown table of every step (webhook, wait mode, conclusion,
//! duration, message), and one of the outputs the steps returned. `$GITHUB_OUTPUT` gets each output a callback returned under its own name,
//! `outputs` (those by step, as JSON), `result` (the run's conclusion), `message` (one line on
//! why) and `results` (JSON of every step), each in the runner's multi-line form
//! `name<<delimiter`, `value`, `delimiter`, with a random delimiter that the value cannot contain.
//! Messages in events are already masked, so nothing secret reaches either file.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use futures::future::BoxFuture;
use hookgate_engine::{Conclusion, Event, Reporter, StepInfo, StepOutcome};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::text::{emoji, first_line, short_duration, table_cell, wait_mode};
use crate::workflow_commands::reporting_warning;

/// Where the summary and outputs go; either may be absent.
#[derive(Debug, Clone, Default)]
pub struct SummaryFiles {
    /// `$GITHUB_STEP_SUMMARY`.
    pub step_summary: Option<PathBuf>,
    /// `$GITHUB_OUTPUT`.
    pub output: Option<PathBuf>,
    /// The workflow run's page, linked under the table.
    pub run_url: Option<String>,
}

/// Writes the job summary and the step outputs when the run ends.
pub struct JobSummaryReporter {
    files: SummaryFiles,
    run: Mutex<(String, String)>,
}

impl JobSummaryReporter {
    /// A reporter writing to `files`.
    pub fn new(files: SummaryFiles) -> Self {
        JobSummaryReporter {
            files,
            run: Mutex::new((String::new(), String::new())),
        }
    }

    async fn run_finished(&self, conclusion: Conclusion, outcomes: &[(StepInfo, StepOutcome)]) {
        let (target, phase) = self.run.lock().await.clone();
        if let Some(path) = &self.files.step_summary {
            let table = summary_markdown(
                &target,
                &phase,
                conclusion,
                outcomes,
                self.files.run_url.as_deref(),
            );
            if let Err(error) = append(path, &table) {
                reporting_warning("writing the job summary", &error);
            }
        }
        if let Some(path) = &self.files.output {
            let mut text = String::new();
            // Each callback output under its own name first, so that the run's own outputs,
            // written after them, keep their meaning.
            for (_, outcome) in outcomes {
                for (name, value) in &outcome.outputs {
                    text.push_str(&output_entry(name, value));
                }
            }
            text.push_str(&output_entry(
                "outputs",
                &outputs_json(outcomes).to_string(),
            ));
            text.push_str(&output_entry("result", conclusion.as_str()));
            text.push_str(&output_entry("message", &run_message(conclusion, outcomes)));
            text.push_str(&output_entry(
                "results",
                &results_json(outcomes).to_string(),
            ));
            if let Err(error) = append(path, &text) {
                reporting_warning("writing the step outputs", &error);
            }
        }
    }
}

impl Reporter for JobSummaryReporter {
    fn report(&self, event: &Event) -> BoxFuture<'_, ()> {
        let event = event.clone();
        Box::pin(async move {
            match &event {
                Event::RunStarted { target, phase, .. } => {
                    *self.run.lock().await = (target.clone(), phase.clone());
                }
                Event::RunFinished {
                    conclusion,
                    outcomes,
                } => self.run_finished(*conclusion, outcomes).await,
                _ => {}
            }
        })
    }
}

fn append(path: &Path, text: &str) -> Result<(), std::io::Error> {
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(text.as_bytes())?;
    file.flush()
}

/// The Markdown appended to the job summary.
pub fn summary_markdown(
    target: &str,
    phase: &str,
    conclusion: Conclusion,
    outcomes: &[(StepInfo, StepOutcome)],
    run_url: Option<&str>,
) -> String {
    let mut md = format!(
        "### {} hookgate: `{}` {} — {}\n\n",
        emoji(conclusion),
        table_cell(target, 100),
        table_cell(phase, 100),
        conclusion
    );
    if outcomes.is_empty() {
        md.push_str("No webhooks are named for this target and phase.\n\n");
        return md;
    }
    md.push_str("| Webhook | Wait mode | Result | Duration | Message |\n");
    md.push_str("|---|---|---|---|---|\n");
    for (step, outcome) in outcomes {
        md.push_str(&format!(
            "| {} | {} | {} {} | {} | {} |\n",
            table_cell(&step.name, 100),
            table_cell(wait_mode(step), 40),
            emoji(outcome.conclusion),
            outcome.conclusion,
            short_duration(outcome.duration),
            table_cell(&outcome.message, 500),
        ));
    }
    let with_outputs: Vec<&(StepInfo, StepOutcome)> = outcomes
        .iter()
        .filter(|(_, outcome)| !outcome.outputs.is_empty())
        .collect();
    if !with_outputs.is_empty() {
        md.push_str("\n| Webhook | Output | Value |\n|---|---|---|\n");
        for (step, outcome) in with_outputs {
            for (name, value) in &outcome.outputs {
                md.push_str(&format!(
                    "| {} | `{}` | {} |\n",
                    table_cell(&step.name, 100),
                    table_cell(name, 100),
                    table_cell(value, 200),
                ));
            }
        }
    }
    if let Some(url) = run_url {
        md.push_str(&format!("\n[Workflow run]({url})\n"));
    }
    md.push('\n');
    md
}

/// One line on the run: the first step that did not pass, or how many passed.
pub fn run_message(conclusion: Conclusion, outcomes: &[(StepInfo, StepOutcome)]) -> String {
    match outcomes
        .iter()
        .find(|(_, outcome)| !outcome.conclusion.is_passing())
    {
        Some((step, outcome)) => {
            let why = first_line(&outcome.message);
            if why.is_empty() {
                format!("{}: {}", step.name, outcome.conclusion)
            } else {
                format!("{}: {}: {why}", step.name, outcome.conclusion)
            }
        }
        None if conclusion.is_passing() => {
            let passed = outcomes
                .iter()
                .filter(|(_, o)| o.conclusion == Conclusion::Success)
                .count();
            format!("{passed} of {} gate(s) passed", outcomes.len())
        }
        None => conclusion.to_string(),
    }
}

/// Every step's result, for the `results` output.
pub fn results_json(outcomes: &[(StepInfo, StepOutcome)]) -> Value {
    Value::Array(
        outcomes
            .iter()
            .map(|(step, outcome)| {
                json!({
                    "name": step.name,
                    "kind": step.kind,
                    "waitMode": step.wait_mode,
                    "group": step.group,
                    "conclusion": outcome.conclusion,
                    "message": outcome.message,
                    "durationMs": u64::try_from(outcome.duration.as_millis()).unwrap_or(u64::MAX),
                    "outputs": outcome.outputs,
                })
            })
            .collect(),
    )
}

/// The callbacks' outputs by step name, for the `outputs` output (steps without any left out).
pub fn outputs_json(outcomes: &[(StepInfo, StepOutcome)]) -> Value {
    Value::Object(
        outcomes
            .iter()
            .filter(|(_, outcome)| !outcome.outputs.is_empty())
            .map(|(step, outcome)| (step.name.clone(), json!(outcome.outputs)))
            .collect(),
    )
}

/// `name<<delimiter\nvalue\ndelimiter\n` with a delimiter that does not occur in `value`.
pub fn output_entry(name: &str, value: &str) -> String {
    let mut delimiter = format!("ghadelimiter_{}", uuid::Uuid::new_v4());
    while value.contains(&delimiter) {
        delimiter = format!("ghadelimiter_{}", uuid::Uuid::new_v4());
    }
    format!("{name}<<{delimiter}\n{value}\n{delimiter}\n")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::*;

    fn step(name: &str, index: usize) -> StepInfo {
        StepInfo {
            name: name.to_owned(),
            index,
            group: index,
            kind: "webhook".to_owned(),
            wait_mode: "callback".to_owned(),
        }
    }

    fn outcome(conclusion: Conclusion, message: &str) -> StepOutcome {
        StepOutcome::new(
            conclusion,
            message.to_owned(),
            None,
            Duration::from_millis(2_500),
        )
    }

    #[test]
    fn an_empty_run_says_so() {
        let md = summary_markdown("staging", "strategy", Conclusion::Success, &[], None);
        assert!(md.contains("No webhooks are named"));
        assert!(!md.contains("| Webhook |"));
    }

    #[test]
    fn output_entries_use_the_multi_line_form() {
        let entry = output_entry("message", "line one\nline two");
        let mut lines = entry.lines();
        let header = lines.next().unwrap();
        let delimiter = header.strip_prefix("message<<").unwrap();
        assert!(delimiter.starts_with("ghadelimiter_"));
        assert_eq!(lines.next(), Some("line one"));
        assert_eq!(lines.next(), Some("line two"));
        assert_eq!(lines.next(), Some(delimiter));
        assert_eq!(lines.next(), None);
    }

    #[test]
    fn the_table_has_a_row_per_step_and_the_message_names_the_failure() {
        let outcomes = vec![
            (step("Migrate", 0), outcome(Conclusion::Success, "done")),
            (
                step("Tests", 1),
                outcome(Conclusion::Failure, "3 tests failed\nsee log"),
            ),
        ];
        let md = summary_markdown(
            "staging",
            "afterDeployment",
            Conclusion::Failure,
            &outcomes,
            None,
        );
        assert!(md.contains("| Migrate | callback | ✅ success | 2s | done |"));
        assert!(md.contains("| Tests | callback | ❌ failure | 2s | 3 tests failed<br>see log |"));
        assert_eq!(
            run_message(Conclusion::Failure, &outcomes),
            "Tests: failure: 3 tests failed"
        );
        let results = results_json(&outcomes);
        assert_eq!(results[1]["conclusion"], "failure");
        assert_eq!(results[0]["durationMs"], 2500);
    }
}
