//! The terminal reporter of `hookgate run` outside GitHub Actions: a live line per step (a
//! spinner, or a progress bar once a percentage is known, when stderr is a terminal; plain lines
//! otherwise), then a table of every step. Everything goes to stderr; messages arrive masked.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use futures::future::BoxFuture;
use hookgate_engine::request::excerpt;
use hookgate_engine::{Conclusion, Event, Reporter, StepInfo, StepOutcome};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Reports a run on stderr.
pub struct TerminalReporter {
    live: Option<MultiProgress>,
    bars: Mutex<HashMap<usize, ProgressBar>>,
}

impl TerminalReporter {
    /// Spinners when stderr is a terminal, plain lines otherwise.
    pub fn new() -> Self {
        let live = std::io::stderr()
            .is_terminal()
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        TerminalReporter {
            live,
            bars: Mutex::new(HashMap::new()),
        }
    }

    fn line(&self, text: &str) {
        match &self.live {
            Some(live) => {
                // A failed write to the terminal has nowhere better to go.
                let _ = live.println(text);
            }
            None => {
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "{text}");
            }
        }
    }

    fn bar(&self, step: &StepInfo) -> Option<ProgressBar> {
        let live = self.live.as_ref()?;
        let mut bars = self.bars.lock().unwrap_or_else(PoisonError::into_inner);
        let bar = bars.entry(step.index).or_insert_with(|| {
            let bar = live.add(ProgressBar::new_spinner());
            bar.set_style(spinner_style());
            bar.set_prefix(step.name.clone());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Some(bar.clone())
    }

    fn handle(&self, event: &Event) {
        match event {
            Event::RunStarted {
                target,
                phase,
                steps,
            } => self.line(&format!(
                "hookgate: target `{target}`, phase `{phase}`: {} step(s)",
                steps.len()
            )),
            Event::StepStarted { step } => {
                let wait = if step.wait_mode.is_empty() {
                    String::new()
                } else {
                    format!(" (waiting by {})", step.wait_mode)
                };
                match self.bar(step) {
                    Some(bar) => bar.set_message(format!("started{wait}")),
                    None => self.line(&format!("▶ {} started{wait}", step.name)),
                }
            }
            Event::StepProgress {
                step,
                message,
                percent,
            } => match self.bar(step) {
                Some(bar) => {
                    if let Some(percent) = percent {
                        bar.set_length(100);
                        bar.set_style(progress_style());
                        bar.set_position(u64::from(*percent));
                    }
                    bar.set_message(printable(message));
                }
                None => self.line(&format!("  {}: {}", step.name, printable(message))),
            },
            Event::StepFinished { step, outcome } => {
                let text = format!(
                    "{} {} {} ({}){}",
                    symbol(outcome.conclusion),
                    step.name,
                    outcome.conclusion,
                    short_duration(outcome.duration),
                    if outcome.message.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", printable(&outcome.message))
                    }
                );
                let bar = self
                    .bars
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&step.index);
                if let Some(bar) = bar {
                    bar.finish_and_clear();
                }
                self.line(&text);
            }
            Event::RunFinished {
                conclusion,
                outcomes,
            } => {
                self.line(&table(outcomes));
                self.line(&format!("result: {conclusion}"));
            }
        }
    }
}

impl Reporter for TerminalReporter {
    fn report(&self, event: &Event) -> BoxFuture<'_, ()> {
        self.handle(event);
        Box::pin(async {})
    }
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {prefix} {elapsed} {wide_msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn progress_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {prefix} [{bar:20}] {pos}% {wide_msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
}

fn symbol(conclusion: Conclusion) -> &'static str {
    match conclusion {
        Conclusion::Success => "✓",
        Conclusion::Failure => "✗",
        Conclusion::Cancelled => "⊘",
        Conclusion::TimedOut => "⏱",
        Conclusion::Skipped => "–",
    }
}

fn short_duration(duration: Duration) -> String {
    if duration < Duration::from_secs(10) {
        format!("{:.1}s", duration.as_secs_f64())
    } else {
        humantime::format_duration(Duration::from_secs(duration.as_secs())).to_string()
    }
}

/// `text` from outside (a callback's message, a status answer) without control characters other
/// than line breaks, so it cannot move the cursor or recolour the terminal.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() && c != '\n' { ' ' } else { c })
        .collect()
}

/// The closing table: step, wait mode, conclusion, duration, message.
pub fn table(outcomes: &[(StepInfo, StepOutcome)]) -> String {
    let rows: Vec<[String; 5]> = outcomes
        .iter()
        .map(|(step, outcome)| {
            [
                step.name.clone(),
                if step.wait_mode.is_empty() {
                    step.kind.clone()
                } else {
                    step.wait_mode.clone()
                },
                outcome.conclusion.to_string(),
                short_duration(outcome.duration),
                excerpt(&outcome.message, 100),
            ]
        })
        .collect();
    let header = ["STEP", "WAIT", "CONCLUSION", "TIME", "MESSAGE"];
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(header.map(str::to_owned)).chain(rows) {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_from_outside_cannot_drive_the_terminal() {
        assert_eq!(printable("ok\x1b[2J\rdone\nnext"), "ok [2J done\nnext");
    }
}
