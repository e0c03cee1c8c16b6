//! The PostgreSQL store, for several relay replicas on one database.
//!
//! Callbacks are committed in groups, as the SQLite store does: one writer task per replica takes
//! whatever callbacks are waiting and stores them with one call of `hookgate_store_callbacks`
//! (migrations/postgres/0002), one round trip whose commit (one WAL flush) answers them all.
//! (Two and four writers sharing the queue measured less intake in relay-bench than one, on two
//! cores: the groups only got smaller.) The call locks the rows of the slots it writes to, in id
//! order (so replicas writing to the same slots queue rather than deadlock), and then numbers each
//! callback after the highest sequence its slot holds and checks it against the deliveries stored
//! before, so sequence numbers and the de-duplication check cannot race between replicas. It
//! sends `NOTIFY hookgate_callbacks, '<slot id>'` for each slot written, which PostgreSQL delivers
//! on commit; every replica LISTENs and wakes its local waiters.
//! A `search_path` given in the URL (`?options=-c search_path=NAME`) selects the schema.

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{
    AddOutcome, Delivery, NewCallback, Slot, SlotId, SlotStore, StoreError, decode_headers,
    encode_headers, from_millis, to_millis, to_sequence,
};
use crate::wakers::Wakers;

/// The channel callbacks are announced on; the payload is the slot id.
const CHANNEL: &str = "hookgate_callbacks";

/// Connections for the writer, slots and reads; the listener holds one more.
const POOL_SIZE: u32 = 16;
/// Attempts of a pooled statement: each pooled connection may have been lost while idle.
const POOLED_ATTEMPTS: u32 = POOL_SIZE + 1;

/// The most callbacks one transaction stores.
const MAX_GROUP: usize = 256;
/// Callbacks waiting for the writer, at most; more wait for room (back-pressure, not memory).
const QUEUE: usize = 1024;

/// The PostgreSQL store.
pub struct PostgresStore {
    pool: PgPool,
    callbacks: mpsc::Sender<Pending>,
}

/// A callback waiting for the writer, with where its outcome goes once committed.
struct Pending {
    callback: NewCallback,
    reply: oneshot::Sender<Result<AddOutcome, StoreError>>,
}

impl PostgresStore {
    /// Connects to the database a `postgres://` URL names and applies the migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(StoreError::database("parsing the PostgreSQL URL"))?;
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            // A pooled connection is not pinged before each use: that was one more round trip
            // per group of callbacks and per long poll's read, on the writer's critical path.
            // One that broke while idle fails its statement, which runs again on another (see
            // `on_a_live_connection`).
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(StoreError::database("connecting to PostgreSQL"))?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        let (callbacks, queue) = mpsc::channel(QUEUE);
        tokio::spawn(write_callbacks(pool.clone(), queue));
        Ok(Self { pool, callbacks })
    }
}

/// Stores the callbacks that arrive, a group per transaction, until every sender is gone.
async fn write_callbacks(pool: PgPool, mut queue: mpsc::Receiver<Pending>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while queue.recv_many(&mut group, MAX_GROUP).await > 0 {
        let callbacks: Vec<&NewCallback> = group.iter().map(|p| &p.callback).collect();
        // A group that was committed before its answer was lost is answered `duplicate` when
        // sent again, with the sequence numbers it got.
        match on_a_live_connection(|| store_group(&pool, &callbacks)).await {
            Ok(outcomes) => {
                for (pending, outcome) in group.drain(..).zip(outcomes) {
                    // A caller that has gone away no longer needs its answer.
                    let _ = pending.reply.send(Ok(outcome));
                }
            }
            Err(err) => {
                tracing::error!(error = %err, callbacks = group.len(), "storing callbacks failed");
                let why = err.to_string();
                for pending in group.drain(..) {
                    let _ = pending.reply.send(Err(StoreError::Write(why.clone())));
                }
            }
        }
    }
}

/// Runs a pooled `statement` until it ends other than with a lost connection, at most once per
/// pooled connection and once more. A connection the server closed while it sat idle (a restart,
/// an idle timeout, a failover) fails its next statement; each statement here can be repeated
/// without effect.
async fn on_a_live_connection<T, F, Fut>(mut statement: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let mut attempt = 1;
    loop {
        match statement().await {
            Err(err) if connection_lost(&err) && attempt < POOLED_ATTEMPTS => {
                tracing::warn!(error = %err, "a PostgreSQL connection was lost; trying another");
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// Whether `err` says the connection is gone (rather than the statement refused).
fn connection_lost(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_) => true,
        // Class 08: connection exception; 57P01-57P05: the server is shutting down or the
        // connection was terminated by an administrator or an idle timeout.
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    }
}

/// Stores `callbacks` in one transaction, one call of `hookgate_store_callbacks` (see its
/// migration); the outcome of each, in order.
async fn store_group(
    pool: &PgPool,
    callbacks: &[&NewCallback],
) -> Result<Vec<AddOutcome>, sqlx::Error> {
    let mut columns = Columns::with_capacity(callbacks.len());
    for callback in callbacks {
        columns.push(callback);
    }
    let rows: Vec<(i64, String, Option<i64>)> = sqlx::query_as(
        "SELECT n, outcome, sequence FROM hookgate_store_callbacks($1, $2, $3, $4, $5, $6)",
    )
    .bind(&columns.slot_ids)
    .bind(&columns.dedup_keys)
    .bind(&columns.received_at_ms)
    .bind(&columns.headers)
    .bind(&columns.bodies)
    .bind(&columns.max_per_slot)
    .fetch_all(pool)
    .await?;
    if rows.len() != callbacks.len() {
        return Err(unexpected(format!(
            "{} outcomes for {} callbacks",
            rows.len(),
            callbacks.len()
        )));
    }
    rows.into_iter()
        .enumerate()
        .map(|(index, (n, outcome, sequence))| {
            if usize::try_from(n).ok() != Some(index + 1) {
                return Err(unexpected(format!("outcome {n} in place {}", index + 1)));
            }
            let sequence = || {
                sequence
                    .map(i64::unsigned_abs)
                    .ok_or_else(|| unexpected(format!("{outcome} without a sequence number")))
            };
            Ok(match outcome.as_str() {
                "stored" => AddOutcome::Stored {
                    sequence: sequence()?,
                },
                "duplicate" => AddOutcome::Duplicate {
                    sequence: sequence()?,
                },
                "full" => AddOutcome::Full,
                "no_slot" => AddOutcome::NoSlot,
                other => return Err(unexpected(format!("unknown outcome {other:?}"))),
            })
        })
        .collect()
}

/// An answer of the store function that the writer does not understand (a schema newer or older
/// than this build).
fn unexpected(what: String) -> sqlx::Error {
    sqlx::Error::Protocol(format!("hookgate_store_callbacks answered {what}"))
}

/// The callbacks of a group, column by column, as the store function takes them.
struct Columns<'a> {
    slot_ids: Vec<&'a str>,
    dedup_keys: Vec<&'a str>,
    received_at_ms: Vec<i64>,
    headers: Vec<String>,
    bodies: Vec<&'a [u8]>,
    max_per_slot: Vec<i64>,
}

impl<'a> Columns<'a> {
    fn with_capacity(capacity: usize) -> Self {
        Self {
            slot_ids: Vec::with_capacity(capacity),
            dedup_keys: Vec::with_capacity(capacity),
            received_at_ms: Vec::with_capacity(capacity),
            headers: Vec::with_capacity(capacity),
            bodies: Vec::with_capacity(capacity),
            max_per_slot: Vec::with_capacity(capacity),
        }
    }

    fn push(&mut self, callback: &'a NewCallback) {
        self.slot_ids.push(callback.slot_id.as_str());
        self.dedup_keys.push(&callback.dedup_key);
        self.received_at_ms.push(to_millis(callback.received_at));
        self.headers.push(encode_headers(&callback.headers));
        self.bodies.push(&callback.body);
        self.max_per_slot
            .push(i64::try_from(callback.max_per_slot).unwrap_or(i64::MAX));
    }
}

impl SlotStore for PostgresStore {
    fn create_slot<'a>(&'a self, slot: &'a Slot) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            // A repeat finds its own row (the id is 128 random bits).
            on_a_live_connection(|| {
                sqlx::query(
                    "INSERT INTO slots (id, auth, label, created_at_ms, deadline_ms) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
                )
                .bind(slot.id.as_str())
                .bind(slot.auth.as_str())
                .bind(&slot.label)
                .bind(to_millis(slot.created_at))
                .bind(to_millis(slot.deadline))
                .execute(&self.pool)
            })
            .await
            .map_err(StoreError::database("storing a slot"))?;
            Ok(())
        })
    }

    fn slot<'a>(&'a self, id: &'a SlotId) -> BoxFuture<'a, Result<Option<Slot>, StoreError>> {
        Box::pin(async move {
            let row = on_a_live_connection(|| {
                sqlx::query(
                    "SELECT auth, label, created_at_ms, deadline_ms FROM slots WHERE id = $1",
                )
                .bind(id.as_str())
                .fetch_optional(&self.pool)
            })
            .await
            .map_err(StoreError::database("reading a slot"))?;
            let Some(row) = row else { return Ok(None) };
            Ok(Some(Slot {
                id: id.clone(),
                auth: super::parse_auth(row.get::<&str, _>(0))?,
                label: row.get(1),
                created_at: from_millis(row.get(2)),
                deadline: from_millis(row.get(3)),
            }))
        })
    }

    fn add_callback(&self, callback: NewCallback) -> BoxFuture<'_, Result<AddOutcome, StoreError>> {
        Box::pin(async move {
            let (reply, outcome) = oneshot::channel();
            let stopped = || StoreError::Closed;
            self.callbacks
                .send(Pending { callback, reply })
                .await
                .map_err(|_| stopped())?;
            outcome.await.map_err(|_| stopped())?
        })
    }

    fn callbacks_after<'a>(
        &'a self,
        slot: &'a SlotId,
        after: u64,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<Delivery>, StoreError>> {
        Box::pin(async move {
            let rows = on_a_live_connection(|| {
                sqlx::query(
                    "SELECT sequence, received_at_ms, headers, body FROM callbacks \
                     WHERE slot_id = $1 AND sequence > $2 ORDER BY sequence LIMIT $3",
                )
                .bind(slot.as_str())
                .bind(i64::try_from(after).unwrap_or(i64::MAX))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
            })
            .await
            .map_err(StoreError::database("reading callbacks"))?;
            rows.iter()
                .map(|row| {
                    Ok(Delivery {
                        sequence: to_sequence(row.get(0))?,
                        received_at: from_millis(row.get(1)),
                        headers: decode_headers(row.get::<&str, _>(2))?,
                        body: row.get(3),
                    })
                })
                .collect()
        })
    }

    fn remove_slots_before(&self, cutoff: SystemTime) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            // The slots, then their callbacks, in one transaction (see migrations/postgres/0003).
            // Two statements: the second takes a fresh snapshot, so it also finds callbacks that
            // a store call holding a slot's lock committed while the first waited for it.
            let removed = on_a_live_connection(|| async {
                let mut transaction = self.pool.begin().await?;
                let gone: Vec<String> =
                    sqlx::query_scalar("DELETE FROM slots WHERE deadline_ms < $1 RETURNING id")
                        .bind(to_millis(cutoff))
                        .fetch_all(&mut *transaction)
                        .await?;
                sqlx::query("DELETE FROM callbacks WHERE slot_id = ANY($1)")
                    .bind(&gone)
                    .execute(&mut *transaction)
                    .await?;
                transaction.commit().await?;
                Ok(gone.len())
            })
            .await
            .map_err(StoreError::database("removing expired slots"))?;
            Ok(u64::try_from(removed).unwrap_or(u64::MAX))
        })
    }

    fn secret_or_insert<'a>(
        &'a self,
        name: &'a str,
        candidate: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, StoreError>> {
        Box::pin(async move {
            on_a_live_connection(|| {
                sqlx::query(
                    "INSERT INTO relay_keys (name, secret, created_at_ms) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO NOTHING",
                )
                .bind(name)
                .bind(&candidate)
                .bind(to_millis(SystemTime::now()))
                .execute(&self.pool)
            })
            .await
            .map_err(StoreError::database("storing the relay key"))?;
            on_a_live_connection(|| {
                sqlx::query_scalar("SELECT secret FROM relay_keys WHERE name = $1")
                    .bind(name)
                    .fetch_one(&self.pool)
            })
            .await
            .map_err(StoreError::database("reading the relay key"))
        })
    }

    fn wake_on_remote_callbacks(&self, wakers: Arc<Wakers>, shutdown: CancellationToken) {
        let pool = self.pool.clone();
        tokio::spawn(async move {
            while !shutdown.is_cancelled() {
                let listener = async {
                    let mut listener = PgListener::connect_with(&pool).await?;
                    listener.listen(CHANNEL).await?;
                    Ok::<_, sqlx::Error>(listener)
                };
                let mut listener = match listener.await {
                    Ok(listener) => listener,
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot LISTEN for callbacks; retrying");
                        tokio::select! {
                            () = shutdown.cancelled() => return,
                            () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        }
                    }
                };
                // Anything announced while we were not listening is found by a fresh look.
                wakers.wake_all();
                loop {
                    let next = tokio::select! {
                        () = shutdown.cancelled() => return,
                        next = listener.try_recv() => next,
                    };
                    match next {
                        Ok(Some(notification)) => match notification.payload().parse::<SlotId>() {
                            Ok(slot) => wakers.wake(&slot),
                            // Not a slot id: no relay sends that, so nobody waits on it.
                            Err(_) => tracing::debug!("ignoring a notification that names no slot"),
                        },
                        // The connection dropped; the next call reconnects. Notifications may
                        // have been lost in between, so every waiter looks again.
                        Ok(None) => wakers.wake_all(),
                        Err(err) => {
                            tracing::warn!(error = %err, "LISTEN connection failed; reconnecting");
                            break;
                        }
                    }
                }
            }
        });
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.pool.close())
    }
}
