//! The PostgreSQL store, for several relay replicas on one database. Each callback is stored in
//! its own transaction that locks the slot's row (so sequence numbers and the de-duplication
//! check cannot race between replicas) and sends `NOTIFY hookgate_callbacks, '<slot id>'`, which
//! PostgreSQL delivers on commit; every replica LISTENs and wakes its local waiters.
//! A `search_path` given in the URL (`?options=-c search_path=NAME`) selects the schema.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::{Postgres, Row, Transaction};
use tokio_util::sync::CancellationToken;

use super::{
    AddOutcome, Delivery, NewCallback, Slot, SlotId, SlotStore, StoreError, decode_headers,
    encode_headers, from_millis, to_millis, to_sequence,
};
use crate::wakers::Wakers;

/// The channel callbacks are announced on; the payload is the slot id.
const CHANNEL: &str = "hookgate_callbacks";

/// The PostgreSQL store.
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to the database a `postgres://` URL names and applies the migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(StoreError::database("parsing the PostgreSQL URL"))?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(StoreError::database("connecting to PostgreSQL"))?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(Self { pool })
    }

    async fn add_in(
        tx: &mut Transaction<'_, Postgres>,
        callback: &NewCallback,
    ) -> Result<AddOutcome, sqlx::Error> {
        let slot = callback.slot_id.as_str();
        // The row lock orders concurrent deliveries to one slot, across replicas.
        let count: Option<i64> =
            sqlx::query_scalar("SELECT callback_count FROM slots WHERE id = $1 FOR UPDATE")
                .bind(slot)
                .fetch_optional(&mut **tx)
                .await?;
        let Some(count) = count else {
            return Ok(AddOutcome::NoSlot);
        };
        let earlier: Option<i64> = sqlx::query_scalar(
            "SELECT sequence FROM callbacks WHERE slot_id = $1 AND dedup_key = $2",
        )
        .bind(slot)
        .bind(&callback.dedup_key)
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(sequence) = earlier {
            return Ok(AddOutcome::Duplicate {
                sequence: sequence.unsigned_abs(),
            });
        }
        if count.unsigned_abs() >= callback.max_per_slot {
            return Ok(AddOutcome::Full);
        }
        let sequence = count + 1;
        sqlx::query("UPDATE slots SET callback_count = $2 WHERE id = $1")
            .bind(slot)
            .bind(sequence)
            .execute(&mut **tx)
            .await?;
        sqlx::query(
            "INSERT INTO callbacks (slot_id, sequence, dedup_key, received_at_ms, headers, body) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(slot)
        .bind(sequence)
        .bind(&callback.dedup_key)
        .bind(to_millis(callback.received_at))
        .bind(encode_headers(&callback.headers))
        .bind(&callback.body)
        .execute(&mut **tx)
        .await?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(slot)
            .execute(&mut **tx)
            .await?;
        Ok(AddOutcome::Stored {
            sequence: sequence.unsigned_abs(),
        })
    }
}

impl SlotStore for PostgresStore {
    fn create_slot<'a>(&'a self, slot: &'a Slot) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO slots (id, auth, label, created_at_ms, deadline_ms) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(slot.id.as_str())
            .bind(slot.auth.as_str())
            .bind(&slot.label)
            .bind(to_millis(slot.created_at))
            .bind(to_millis(slot.deadline))
            .execute(&self.pool)
            .await
            .map_err(StoreError::database("storing a slot"))?;
            Ok(())
        })
    }

    fn slot<'a>(&'a self, id: &'a SlotId) -> BoxFuture<'a, Result<Option<Slot>, StoreError>> {
        Box::pin(async move {
            let row = sqlx::query(
                "SELECT auth, label, created_at_ms, deadline_ms FROM slots WHERE id = $1",
            )
            .bind(id.as_str())
            .fetch_optional(&self.pool)
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
            let mut tx = self
                .pool
                .begin()
                .await
                .map_err(StoreError::database("starting a transaction"))?;
            let outcome = Self::add_in(&mut tx, &callback)
                .await
                .map_err(StoreError::database("storing a callback"))?;
            tx.commit()
                .await
                .map_err(StoreError::database("committing a callback"))?;
            Ok(outcome)
        })
    }

    fn callbacks_after<'a>(
        &'a self,
        slot: &'a SlotId,
        after: u64,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<Delivery>, StoreError>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT sequence, received_at_ms, headers, body FROM callbacks \
                 WHERE slot_id = $1 AND sequence > $2 ORDER BY sequence LIMIT $3",
            )
            .bind(slot.as_str())
            .bind(i64::try_from(after).unwrap_or(i64::MAX))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
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
            let removed = sqlx::query("DELETE FROM slots WHERE deadline_ms < $1")
                .bind(to_millis(cutoff))
                .execute(&self.pool)
                .await
                .map_err(StoreError::database("removing expired slots"))?
                .rows_affected();
            Ok(removed)
        })
    }

    fn secret_or_insert<'a>(
        &'a self,
        name: &'a str,
        candidate: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, StoreError>> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO relay_keys (name, secret, created_at_ms) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(candidate)
            .bind(to_millis(SystemTime::now()))
            .execute(&self.pool)
            .await
            .map_err(StoreError::database("storing the relay key"))?;
            sqlx::query_scalar("SELECT secret FROM relay_keys WHERE name = $1")
                .bind(name)
                .fetch_one(&self.pool)
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
