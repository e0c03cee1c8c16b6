//! Runs a reporter that calls GitHub in a task of its own, so its API calls (and any wait for a
//! rate limit) do not hold up the reporters after it, such as the job's log.
//!
//! The engine hands every event to each reporter in turn and waits for each. A detached reporter
//! takes the event, queues it for its own task and returns at once; events stay in order. Only
//! `RunFinished` waits until everything queued before it, and itself, is done, so when the
//! engine has heard back from every reporter, GitHub has been told everything.

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use hookgate_engine::{Event, Reporter};
use tokio::sync::{mpsc, oneshot};

type Queued = (Event, Option<oneshot::Sender<()>>);

/// A reporter that works through its events in a task of its own.
pub struct Detached {
    inner: Arc<dyn Reporter>,
    queue: Mutex<Option<mpsc::UnboundedSender<Queued>>>,
}

impl Detached {
    /// Wraps `inner`; its task starts with the first event.
    pub fn new(inner: impl Reporter + 'static) -> Self {
        Detached {
            inner: Arc::new(inner),
            queue: Mutex::new(None),
        }
    }

    fn sender(&self) -> Option<mpsc::UnboundedSender<Queued>> {
        // A poisoned lock only means another event panicked mid-send; the queue is still fine.
        let mut queue = self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if queue.is_none() {
            let (sender, mut receiver) = mpsc::unbounded_channel::<Queued>();
            let inner = Arc::clone(&self.inner);
            tokio::spawn(async move {
                while let Some((event, done)) = receiver.recv().await {
                    inner.report(&event).await;
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                }
            });
            *queue = Some(sender);
        }
        queue.clone()
    }
}

impl Reporter for Detached {
    fn report(&self, event: &Event) -> BoxFuture<'_, ()> {
        let event = event.clone();
        Box::pin(async move {
            let Some(sender) = self.sender() else {
                return;
            };
            if matches!(event, Event::RunFinished { .. }) {
                let (done, finished) = oneshot::channel();
                if sender.send((event, Some(done))).is_ok() {
                    let _ = finished.await;
                }
            } else {
                let _ = sender.send((event, None));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use hookgate_engine::{Conclusion, StepInfo};

    use super::*;

    /// Records events slowly.
    struct Slow(Arc<Mutex<Vec<String>>>);

    impl Reporter for Slow {
        fn report(&self, event: &Event) -> BoxFuture<'_, ()> {
            let name = match event {
                Event::RunStarted { .. } => "run-started",
                Event::StepStarted { .. } => "step-started",
                Event::RunFinished { .. } => "run-finished",
                _ => "other",
            };
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                self.0.lock().unwrap().push(name.to_owned());
            })
        }
    }

    #[tokio::test]
    async fn events_keep_their_order_and_run_finished_waits_for_all() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let detached = Detached::new(Slow(Arc::clone(&seen)));
        let step = StepInfo {
            name: "A".to_owned(),
            index: 0,
            group: 0,
            kind: "webhook".to_owned(),
            wait_mode: "none".to_owned(),
        };
        detached
            .report(&Event::RunStarted {
                target: "t".to_owned(),
                phase: "p".to_owned(),
                steps: vec![step.clone()],
            })
            .await;
        detached.report(&Event::StepStarted { step }).await;
        detached
            .report(&Event::RunFinished {
                conclusion: Conclusion::Success,
                outcomes: Vec::new(),
            })
            .await;
        assert_eq!(
            *seen.lock().unwrap(),
            ["run-started", "step-started", "run-finished"]
        );
    }
}
