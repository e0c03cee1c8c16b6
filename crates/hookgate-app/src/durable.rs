//! What makes a gate's run resumable: a mailbox whose slots are remembered per gate (a run
//! resumed after a restart waits on the slot its service was told of, where callbacks that came
//! meanwhile are kept), and the engine's journal, both written to the gate store under the
//! gate's lease.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use futures::FutureExt as _;
use futures::future::BoxFuture;
use hookgate_engine::{Journal, Mailbox, MailboxError, StepRecord};
use hookgate_protocol::{CreateSlot, Delivery, SlotCreated};
use hookgate_relay::{LocalError, LocalSlots};

use crate::gates::{GateStore, GateStoreError};

/// Runs a store call until it succeeds: a database that is away for a moment (a failover, a
/// busy file) delays the gate instead of failing it, and so does a lease that ran out. The
/// driver decides about leases: it stops this gate's run when the lease is gone for good (taken
/// by another replica, or expired by this replica's clock), and renews it otherwise, after
/// which the write goes through. A run is never failed by the store, so an outage never turns
/// into a rejection.
pub(crate) async fn persist<T, F, Fut>(what: &str, mut call: F) -> Result<T, GateStoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, GateStoreError>>,
{
    let mut delay = Duration::from_millis(200);
    loop {
        match call().await {
            Err(GateStoreError::Database { context, source }) => {
                tracing::warn!(error = %source, context, what, ?delay, "the gate store failed; trying again");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(GateStoreError::LeaseLost) => {
                tracing::debug!(
                    what,
                    ?delay,
                    "the gate's lease is not current; waiting for the driver"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

/// One gate's slots, in the relay that drives it.
pub struct GateMailbox {
    slots: LocalSlots,
    store: Arc<GateStore>,
    delivery: String,
    owner: String,
    /// How many slots each label has opened in this attempt: a label that opens twice gets
    /// two slots, and the same two again after a restart.
    opened: Mutex<HashMap<String, usize>>,
}

impl GateMailbox {
    /// The mailbox of gate `delivery`, driven by `owner`.
    pub fn new(slots: LocalSlots, store: Arc<GateStore>, delivery: &str, owner: &str) -> Self {
        GateMailbox {
            slots,
            store,
            delivery: delivery.to_owned(),
            owner: owner.to_owned(),
            opened: Mutex::new(HashMap::new()),
        }
    }

    async fn open_slot(&self, request: CreateSlot) -> Result<SlotCreated, MailboxError> {
        let occurrence = {
            let mut opened = self.opened.lock().unwrap_or_else(PoisonError::into_inner);
            let count = opened.entry(request.label.clone()).or_insert(0);
            *count += 1;
            *count
        };
        let name = format!("slot:{}#{occurrence}", request.label);
        let known = persist("reading a slot", || {
            self.store.recall(&self.delivery, &name)
        })
        .await
        .map_err(|err| MailboxError::Permanent(err.to_string()))?;
        if let Some(body) = known
            && let Ok(slot) = serde_json::from_str::<SlotCreated>(&body)
            && slot.deadline > SystemTime::now()
        {
            return Ok(slot);
        }
        let slot = self.slots.open(request).await.map_err(local_error)?;
        let body = serde_json::to_string(&slot)
            .map_err(|err| MailboxError::Permanent(format!("cannot keep the slot: {err}")))?;
        persist("keeping a slot", || {
            self.store.record(&self.delivery, &self.owner, &name, &body)
        })
        .await
        .map_err(|err| MailboxError::Permanent(err.to_string()))?;
        Ok(slot)
    }
}

fn local_error(err: LocalError) -> MailboxError {
    match err {
        LocalError::Unavailable(reason) => MailboxError::Transient(reason),
        other => MailboxError::Permanent(other.to_string()),
    }
}

impl Mailbox for GateMailbox {
    fn open(&self, request: CreateSlot) -> BoxFuture<'_, Result<SlotCreated, MailboxError>> {
        self.open_slot(request).boxed()
    }

    fn wait<'a>(
        &'a self,
        slot: &'a SlotCreated,
        after: u64,
        wait: Duration,
    ) -> BoxFuture<'a, Result<Vec<Delivery>, MailboxError>> {
        async move {
            self.slots
                .wait(&slot.id, after, wait)
                .await
                .map_err(local_error)
        }
        .boxed()
    }
}

/// One gate's journal in the gate store.
pub struct GateJournal {
    store: Arc<GateStore>,
    delivery: String,
    owner: String,
}

impl GateJournal {
    /// The journal of gate `delivery`, written by `owner`.
    pub fn new(store: Arc<GateStore>, delivery: &str, owner: &str) -> Self {
        GateJournal {
            store,
            delivery: delivery.to_owned(),
            owner: owner.to_owned(),
        }
    }
}

impl Journal for GateJournal {
    fn recall<'a>(&'a self, step: &'a str) -> BoxFuture<'a, Result<Option<StepRecord>, String>> {
        async move {
            let name = format!("step:{step}");
            let body = persist("reading a step", || {
                self.store.recall(&self.delivery, &name)
            })
            .await
            .map_err(|err| err.to_string())?;
            match body {
                Some(body) => serde_json::from_str(&body)
                    .map(Some)
                    .map_err(|err| format!("a stored step record is unreadable: {err}")),
                None => Ok(None),
            }
        }
        .boxed()
    }

    fn record<'a>(
        &'a self,
        step: &'a str,
        record: &'a StepRecord,
    ) -> BoxFuture<'a, Result<(), String>> {
        async move {
            let body = serde_json::to_string(record).map_err(|err| err.to_string())?;
            let name = format!("step:{step}");
            persist("writing a step", || {
                self.store.record(&self.delivery, &self.owner, &name, &body)
            })
            .await
            .map_err(|err| err.to_string())
        }
        .boxed()
    }
}
