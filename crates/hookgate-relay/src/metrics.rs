//! The relay's Prometheus metrics, kept in memory and rendered as text at `/metrics`: slots
//! created, callbacks by outcome and status, long polls waiting now, and a request latency
//! histogram per route. A handful of counters does not need a metrics library.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0, 60.0,
];

/// What became of a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CallbackOutcome {
    /// Stored for the first time.
    Stored,
    /// A repeat of a stored delivery.
    Duplicate,
    /// Refused (the status says why).
    Rejected,
}

impl CallbackOutcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Stored => "stored",
            Self::Duplicate => "duplicate",
            Self::Rejected => "rejected",
        }
    }
}

#[derive(Debug, Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The relay's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    slots_created: AtomicU64,
    callbacks: Mutex<BTreeMap<(CallbackOutcome, u16), u64>>,
    waiters: AtomicI64,
    requests: Mutex<BTreeMap<String, Histogram>>,
}

/// Counts one waiting long poll while it lives.
#[derive(Debug)]
pub struct Waiting<'a>(&'a Metrics);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiters.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Counts a created slot.
    pub fn slot_created(&self) {
        self.slots_created.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a callback by outcome and answered status.
    pub fn callback(&self, outcome: CallbackOutcome, status: u16) {
        let mut callbacks = self
            .callbacks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *callbacks.entry((outcome, status)).or_default() += 1;
    }

    /// Counts a long poll as waiting until the guard drops.
    pub fn waiting(&self) -> Waiting<'_> {
        self.waiters.fetch_add(1, Ordering::Relaxed);
        Waiting(self)
    }

    /// Long polls waiting now.
    pub fn waiters(&self) -> i64 {
        self.waiters.load(Ordering::Relaxed)
    }

    /// Records how long a request on `route` took.
    pub fn request(&self, route: &str, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let mut requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        let histogram = match requests.get_mut(route) {
            Some(histogram) => histogram,
            None => requests.entry(route.to_owned()).or_default(),
        };
        for (bucket, bound) in histogram.buckets.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        histogram.count += 1;
        histogram.sum += seconds;
    }

    /// The metrics in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "# HELP hookgate_relay_slots_created_total Slots created.\n\
             # TYPE hookgate_relay_slots_created_total counter\n\
             hookgate_relay_slots_created_total {}",
            self.slots_created.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP hookgate_relay_callbacks_total Callbacks received, by outcome and answered status.\n\
             # TYPE hookgate_relay_callbacks_total counter"
        );
        for ((outcome, status), count) in self
            .callbacks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            let _ = writeln!(
                out,
                "hookgate_relay_callbacks_total{{outcome=\"{}\",status=\"{status}\"}} {count}",
                outcome.as_str()
            );
        }
        let _ = writeln!(
            out,
            "# HELP hookgate_relay_waiters Long polls waiting now.\n\
             # TYPE hookgate_relay_waiters gauge\n\
             hookgate_relay_waiters {}",
            self.waiters()
        );
        let _ = writeln!(
            out,
            "# HELP hookgate_relay_request_duration_seconds Time to answer a request, by route.\n\
             # TYPE hookgate_relay_request_duration_seconds histogram"
        );
        for (route, histogram) in self
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            for (count, bound) in histogram.buckets.iter().zip(BUCKETS) {
                let _ = writeln!(
                    out,
                    "hookgate_relay_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "hookgate_relay_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}\n\
                 hookgate_relay_request_duration_seconds_sum{{route=\"{route}\"}} {}\n\
                 hookgate_relay_request_duration_seconds_count{{route=\"{route}\"}} {}",
                histogram.count, histogram.sum, histogram.count
            );
        }
        out
    }
}
