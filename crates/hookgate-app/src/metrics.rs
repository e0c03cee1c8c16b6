//! The App's Prometheus metrics, appended to the relay's `/metrics`: gates open, taken,
//! approved, rejected, timed out, resumed after a restart, the time from event to answer, and
//! GitHub webhooks by outcome.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// The upper bounds of the time-to-answer buckets, in seconds.
const ANSWER_BUCKETS: [f64; 10] = [
    1.0, 5.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0, 604800.0,
];

/// What a GitHub webhook delivery came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// A new gate.
    Gate,
    /// A delivery already taken.
    Redelivery,
    /// `ping`, or an event the App does not act on.
    Ignored,
    /// A missing or wrong signature.
    Unauthorized,
    /// A body that is not the event it says.
    BadRequest,
    /// A gate that could not be stored (answered 503).
    Unavailable,
}

impl WebhookOutcome {
    fn label(self) -> &'static str {
        match self {
            WebhookOutcome::Gate => "gate",
            WebhookOutcome::Redelivery => "redelivery",
            WebhookOutcome::Ignored => "ignored",
            WebhookOutcome::Unauthorized => "unauthorized",
            WebhookOutcome::BadRequest => "bad_request",
            WebhookOutcome::Unavailable => "unavailable",
        }
    }
}

const OUTCOMES: [WebhookOutcome; 6] = [
    WebhookOutcome::Gate,
    WebhookOutcome::Redelivery,
    WebhookOutcome::Ignored,
    WebhookOutcome::Unauthorized,
    WebhookOutcome::BadRequest,
    WebhookOutcome::Unavailable,
];

/// The counters.
#[derive(Default)]
pub struct AppMetrics {
    open: AtomicI64,
    approved: AtomicU64,
    rejected: AtomicU64,
    timed_out: AtomicU64,
    resumed: AtomicU64,
    unanswered: AtomicU64,
    webhooks: [AtomicU64; 6],
    answer_seconds: Mutex<(Vec<u64>, f64, u64)>,
}

impl AppMetrics {
    /// Sets the number of open gates (counted in the store, so every replica agrees).
    pub fn set_open(&self, open: i64) {
        self.open.store(open, Ordering::Relaxed);
    }

    /// A webhook delivery's outcome.
    pub fn webhook(&self, outcome: WebhookOutcome) {
        let index = OUTCOMES.iter().position(|o| *o == outcome).unwrap_or(0);
        self.webhooks[index].fetch_add(1, Ordering::Relaxed);
    }

    /// A gate closed without GitHub taking its answer.
    pub fn unanswered(&self) {
        self.unanswered.fetch_add(1, Ordering::Relaxed);
    }

    /// A gate taken again after the replica that drove it stopped.
    pub fn resumed(&self) {
        self.resumed.fetch_add(1, Ordering::Relaxed);
    }

    /// A gate answered `approved` or not, `after` its event, timed out or not.
    pub fn answered(&self, approved: bool, timed_out: bool, after: Duration) {
        if approved {
            self.approved.fetch_add(1, Ordering::Relaxed);
        } else {
            self.rejected.fetch_add(1, Ordering::Relaxed);
        }
        if timed_out {
            self.timed_out.fetch_add(1, Ordering::Relaxed);
        }
        let seconds = after.as_secs_f64();
        let mut histogram = self
            .answer_seconds
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if histogram.0.is_empty() {
            histogram.0 = vec![0; ANSWER_BUCKETS.len()];
        }
        for (count, bound) in histogram.0.iter_mut().zip(ANSWER_BUCKETS) {
            if seconds <= bound {
                *count += 1;
            }
        }
        histogram.1 += seconds;
        histogram.2 += 1;
    }

    /// The metrics in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        let _ = writeln!(
            out,
            "# HELP hookgate_gates_open Deployment protection gates not answered yet.\n# TYPE hookgate_gates_open gauge\nhookgate_gates_open {}",
            self.open.load(Ordering::Relaxed)
        );
        counter(
            &mut out,
            "hookgate_gates_approved_total",
            "Gates answered approved.",
            self.approved.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "hookgate_gates_rejected_total",
            "Gates answered rejected.",
            self.rejected.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "hookgate_gates_timed_out_total",
            "Gates rejected because their time ran out.",
            self.timed_out.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "hookgate_gates_unanswered_total",
            "Gates closed without GitHub taking their answer (refused for good, or not taken for a day).",
            self.unanswered.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "hookgate_gates_resumed_total",
            "Gates taken over after the replica driving them stopped.",
            self.resumed.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP hookgate_github_webhooks_total GitHub webhook deliveries by outcome.\n# TYPE hookgate_github_webhooks_total counter"
        );
        for (outcome, count) in OUTCOMES.iter().zip(&self.webhooks) {
            let _ = writeln!(
                out,
                "hookgate_github_webhooks_total{{outcome=\"{}\"}} {}",
                outcome.label(),
                count.load(Ordering::Relaxed)
            );
        }
        let histogram = self
            .answer_seconds
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = writeln!(
            out,
            "# HELP hookgate_gate_answer_seconds Time from a gate's event to its answer.\n# TYPE hookgate_gate_answer_seconds histogram"
        );
        for (index, bound) in ANSWER_BUCKETS.iter().enumerate() {
            let count = histogram.0.get(index).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "hookgate_gate_answer_seconds_bucket{{le=\"{bound}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "hookgate_gate_answer_seconds_bucket{{le=\"+Inf\"}} {}\nhookgate_gate_answer_seconds_sum {}\nhookgate_gate_answer_seconds_count {}",
            histogram.2, histogram.1, histogram.2
        );
        out
    }
}
