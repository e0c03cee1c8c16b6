//! The SQLite store: one file in WAL mode with `synchronous=FULL`, so a 202 means the callback
//! is on disk. Every write goes through one writer task that commits whatever is queued in one
//! transaction (group commit): a durable commit costs one fsync, and under load many callbacks
//! share it. Reads use a small pool of their own connections, which WAL lets run beside the writer.
//! `sqlite::memory:` is served by a private temporary file (removed on drop) so that readers and
//! the writer see one database; it skips the fsyncs, since nothing is meant to survive.
//! The writer runs on a thread of its own (see [`SqliteStore::open`]).

use std::path::Path;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, Row};
use tokio::sync::{mpsc, oneshot};

use super::{
    AddOutcome, CallbackAuth, NewCallback, Slot, SlotId, SlotStore, StoreError, StoredCallback,
    decode_headers, encode_headers, from_millis, to_millis, to_sequence,
};

/// Each reader connection's page cache, in KiB (SQLite's negative `cache_size`).
const READER_CACHE_KIB: &str = "-256";
/// How many queued writes one transaction takes at most.
const MAX_BATCH: usize = 512;
/// How many callbacks one multi-statement insert stores at most (a power of two).
const INSERT_CHUNK: usize = 64;

/// Stores one callback if it is new and its slot has room, answering its sequence number and its
/// place `{index}` in the chunk. The trigger of migration 0002 moves the slot's count along, so the
/// next statement of the chunk sees it. Parameters, in order: dedup key, received at, headers,
/// body, slot id, the slot's maximum, dedup key.
const INSERT_ONE: &str = "INSERT INTO callbacks \
     (slot_id, sequence, dedup_key, received_at_ms, headers, body) \
     SELECT id, callback_count + 1, ?, ?, ?, ? FROM slots \
     WHERE id = ? AND callback_count < ? \
     AND NOT EXISTS (SELECT 1 FROM callbacks AS earlier \
     WHERE earlier.slot_id = slots.id AND earlier.dedup_key = ?) \
     RETURNING sequence, {index};";

/// The SQLite store.
pub struct SqliteStore {
    readers: SqlitePool,
    writes: mpsc::Sender<Write>,
    // Kept alive for as long as the store: an in-memory store's file lives in it.
    _temp_dir: Option<tempfile::TempDir>,
}

/// One write, with where its answer goes once the transaction holding it has committed.
enum Write {
    Op(Op),
    Close(oneshot::Sender<()>),
}

/// A write that changes the database.
enum Op {
    CreateSlot(Slot, oneshot::Sender<Result<(), StoreError>>),
    AddCallback(NewCallback, oneshot::Sender<Result<AddOutcome, StoreError>>),
    RemoveBefore(i64, oneshot::Sender<Result<u64, StoreError>>),
    SecretOrInsert(
        String,
        Vec<u8>,
        oneshot::Sender<Result<Vec<u8>, StoreError>>,
    ),
}

/// A write applied inside the open transaction, waiting for the commit to answer.
enum Applied {
    Unit(oneshot::Sender<Result<(), StoreError>>),
    Added(AddOutcome, oneshot::Sender<Result<AddOutcome, StoreError>>),
    Removed(u64, oneshot::Sender<Result<u64, StoreError>>),
    Secret(Vec<u8>, oneshot::Sender<Result<Vec<u8>, StoreError>>),
}

impl Applied {
    fn commit(self) {
        // A caller that has gone away (a dropped request) no longer needs its answer.
        match self {
            Self::Unit(reply) => drop(reply.send(Ok(()))),
            Self::Added(outcome, reply) => drop(reply.send(Ok(outcome))),
            Self::Removed(count, reply) => drop(reply.send(Ok(count))),
            Self::Secret(secret, reply) => drop(reply.send(Ok(secret))),
        }
    }

    fn fail(self, why: &str) {
        let error = || StoreError::Write(why.to_owned());
        match self {
            Self::Unit(reply) => drop(reply.send(Err(error()))),
            Self::Added(_, reply) => drop(reply.send(Err(error()))),
            Self::Removed(_, reply) => drop(reply.send(Err(error()))),
            Self::Secret(_, reply) => drop(reply.send(Err(error()))),
        }
    }
}

impl SqliteStore {
    /// Opens (creating and migrating) the database a `sqlite:` URL names.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let (options, temp_dir) = if in_memory {
            let dir = tempfile::Builder::new()
                .prefix("hookgate-relay-")
                .tempdir()
                .map_err(StoreError::TempFile)?;
            let options = SqliteConnectOptions::new()
                .filename(dir.path().join("relay.sqlite"))
                .synchronous(SqliteSynchronous::Off);
            (options, Some(dir))
        } else {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(StoreError::database("parsing the SQLite URL"))?
                .synchronous(SqliteSynchronous::Full);
            (options, None)
        };
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);

        let mut writer = options
            .connect()
            .await
            .map_err(StoreError::database("opening the SQLite database"))?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&mut writer)
            .await?;
        // Readers look up a slot's few newest rows by index: a small page cache each does, and
        // the operating system's cache serves the rest, where 2 MiB each (SQLite's default)
        // would fill up as soon as thousands of long polls have read once.
        let readers = SqlitePoolOptions::new()
            .min_connections(1)
            .max_connections(4)
            .connect_with(options.pragma("cache_size", READER_CACHE_KIB))
            .await
            .map_err(StoreError::database("opening SQLite readers"))?;

        // The writer gets a thread and a runtime of its own: each of its round trips to the
        // database thread then resumes at once instead of queueing behind every request task on
        // the server's runtime, which held a batch for milliseconds under load.
        let (writes, queue) = mpsc::channel(4096);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(StoreError::Writer)?;
        std::thread::Builder::new()
            .name("hookgate-sqlite-writer".to_owned())
            .spawn(move || runtime.block_on(write_loop(writer, queue)))
            .map_err(StoreError::Writer)?;
        Ok(Self {
            readers,
            writes,
            _temp_dir: temp_dir,
        })
    }

    /// Opens the SQLite database at `path`.
    pub async fn open_path(path: &Path) -> Result<Self, StoreError> {
        Self::open(&format!("sqlite:{}", path.display())).await
    }

    async fn write<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Op,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writes
            .send(Write::Op(make(reply)))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

impl SlotStore for SqliteStore {
    fn create_slot<'a>(&'a self, slot: &'a Slot) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.write(|reply| Op::CreateSlot(slot.clone(), reply)))
    }

    fn slot<'a>(&'a self, id: &'a SlotId) -> BoxFuture<'a, Result<Option<Slot>, StoreError>> {
        Box::pin(async move {
            let row = sqlx::query(
                "SELECT auth, label, created_at_ms, deadline_ms FROM slots WHERE id = ?1",
            )
            .bind(id.as_str())
            .fetch_optional(&self.readers)
            .await
            .map_err(StoreError::database("reading a slot"))?;
            let Some(row) = row else { return Ok(None) };
            Ok(Some(Slot {
                id: id.clone(),
                auth: CallbackAuth::parse(row.get::<&str, _>(0))?,
                label: row.get(1),
                created_at: from_millis(row.get(2)),
                deadline: from_millis(row.get(3)),
            }))
        })
    }

    fn add_callback(&self, callback: NewCallback) -> BoxFuture<'_, Result<AddOutcome, StoreError>> {
        Box::pin(self.write(|reply| Op::AddCallback(callback, reply)))
    }

    fn callbacks_after<'a>(
        &'a self,
        slot: &'a SlotId,
        after: u64,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<StoredCallback>, StoreError>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT sequence, received_at_ms, headers, body FROM callbacks \
                 WHERE slot_id = ?1 AND sequence > ?2 ORDER BY sequence LIMIT ?3",
            )
            .bind(slot.as_str())
            .bind(i64::try_from(after).unwrap_or(i64::MAX))
            .bind(i64::from(limit))
            .fetch_all(&self.readers)
            .await
            .map_err(StoreError::database("reading callbacks"))?;
            rows.iter()
                .map(|row| {
                    Ok(StoredCallback {
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
        Box::pin(self.write(move |reply| Op::RemoveBefore(to_millis(cutoff), reply)))
    }

    fn secret_or_insert<'a>(
        &'a self,
        name: &'a str,
        candidate: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, StoreError>> {
        Box::pin(self.write(move |reply| Op::SecretOrInsert(name.to_owned(), candidate, reply)))
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let (done, closed) = oneshot::channel();
            if self.writes.send(Write::Close(done)).await.is_ok() {
                let _ = closed.await;
            }
            self.readers.close().await;
        })
    }
}

async fn write_loop(mut connection: SqliteConnection, mut queue: mpsc::Receiver<Write>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut applied = Vec::with_capacity(MAX_BATCH);
    let mut close_reply = None;
    while close_reply.is_none() && queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        // The common case under load, a batch of callbacks only, takes one round trip to the
        // database thread: begin, every insert and the commit in one multi-statement query.
        if batch.len() <= INSERT_CHUNK
            && batch
                .iter()
                .all(|write| matches!(write, Write::Op(Op::AddCallback(..))))
        {
            let mut callbacks = Vec::with_capacity(batch.len());
            for write in batch.drain(..) {
                if let Write::Op(Op::AddCallback(callback, reply)) = write {
                    callbacks.push((callback, reply));
                }
            }
            match insert_callbacks(&mut connection, &mut callbacks, &mut applied, true).await {
                Ok(()) => applied.drain(..).for_each(Applied::commit),
                Err(err) => {
                    tracing::error!(error = %err, "SQLite write transaction failed");
                    let _ = sqlx::query("ROLLBACK").execute(&mut connection).await;
                    // Their callers see `Closed` and answer 503; nothing was committed for them.
                    callbacks.clear();
                }
            }
            continue;
        }
        let result = async {
            sqlx::query("BEGIN IMMEDIATE")
                .execute(&mut connection)
                .await?;
            // Callbacks go in chunks of one multi-statement insert each: one round trip to the
            // database thread per chunk instead of one per callback.
            let mut callbacks = Vec::with_capacity(INSERT_CHUNK);
            for write in batch.drain(..) {
                match write {
                    Write::Close(reply) => close_reply = Some(reply),
                    Write::Op(Op::AddCallback(callback, reply)) => {
                        callbacks.push((callback, reply));
                        if callbacks.len() == INSERT_CHUNK {
                            add_callbacks(&mut connection, &mut callbacks, &mut applied).await?;
                        }
                    }
                    Write::Op(op) => {
                        add_callbacks(&mut connection, &mut callbacks, &mut applied).await?;
                        applied.push(apply(&mut connection, op).await?);
                    }
                }
            }
            add_callbacks(&mut connection, &mut callbacks, &mut applied).await?;
            sqlx::query("COMMIT").execute(&mut connection).await?;
            Ok::<_, sqlx::Error>(())
        }
        .await;
        match result {
            Ok(()) => applied.drain(..).for_each(Applied::commit),
            Err(err) => {
                tracing::error!(error = %err, "SQLite write transaction failed");
                let _ = sqlx::query("ROLLBACK").execute(&mut connection).await;
                let why = err.to_string();
                applied.drain(..).for_each(|write| write.fail(&why));
                // Writes not reached before the failure are dropped: their callers see `Closed`
                // and answer 503, so the sender retries; nothing was committed for them.
                batch.clear();
            }
        }
    }
    if let Err(err) = connection.close().await {
        tracing::warn!(error = %err, "closing the SQLite writer");
    }
    if let Some(reply) = close_reply {
        let _ = reply.send(());
    }
}

async fn apply(connection: &mut SqliteConnection, op: Op) -> Result<Applied, sqlx::Error> {
    Ok(match op {
        Op::CreateSlot(slot, reply) => {
            sqlx::query(
                "INSERT INTO slots (id, auth, label, created_at_ms, deadline_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .bind(slot.id.as_str())
            .bind(slot.auth.as_str())
            .bind(&slot.label)
            .bind(to_millis(slot.created_at))
            .bind(to_millis(slot.deadline))
            .execute(&mut *connection)
            .await?;
            Applied::Unit(reply)
        }
        Op::AddCallback(callback, reply) => {
            let mut one = vec![(callback, reply)];
            let mut applied = Vec::with_capacity(1);
            add_callbacks(connection, &mut one, &mut applied).await?;
            return applied.pop().ok_or(sqlx::Error::RowNotFound);
        }
        Op::RemoveBefore(cutoff, reply) => {
            sqlx::query(
                "DELETE FROM callbacks WHERE slot_id IN (SELECT id FROM slots WHERE deadline_ms < ?1)",
            )
            .bind(cutoff)
            .execute(&mut *connection)
            .await?;
            let removed = sqlx::query("DELETE FROM slots WHERE deadline_ms < ?1")
                .bind(cutoff)
                .execute(&mut *connection)
                .await?
                .rows_affected();
            Applied::Removed(removed, reply)
        }
        Op::SecretOrInsert(name, candidate, reply) => {
            sqlx::query(
                "INSERT INTO relay_keys (name, secret, created_at_ms) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(&name)
            .bind(candidate)
            .bind(to_millis(SystemTime::now()))
            .execute(&mut *connection)
            .await?;
            let secret: Vec<u8> =
                sqlx::query_scalar("SELECT secret FROM relay_keys WHERE name = ?1")
                    .bind(&name)
                    .fetch_one(&mut *connection)
                    .await?;
            Applied::Secret(secret, reply)
        }
    })
}

type PendingCallback = (NewCallback, oneshot::Sender<Result<AddOutcome, StoreError>>);

/// Stores the pending callbacks (emptying the list) and queues their answers, inside the open
/// transaction.
async fn add_callbacks(
    connection: &mut SqliteConnection,
    pending: &mut Vec<PendingCallback>,
    applied: &mut Vec<Applied>,
) -> Result<(), sqlx::Error> {
    insert_callbacks(connection, pending, applied, false).await
}

/// Stores the pending callbacks (emptying the list) and queues their answers; with `own_transaction`
/// the same query also begins and commits the transaction.
async fn insert_callbacks(
    connection: &mut SqliteConnection,
    pending: &mut Vec<PendingCallback>,
    applied: &mut Vec<Applied>,
    own_transaction: bool,
) -> Result<(), sqlx::Error> {
    if pending.is_empty() {
        return Ok(());
    }
    let size = pending.len().next_power_of_two();
    let mut query = sqlx::query(sqlx::AssertSqlSafe(insert_sql(size, own_transaction)));
    for (callback, _) in pending.iter() {
        query = query
            .bind(callback.dedup_key.as_str())
            .bind(to_millis(callback.received_at))
            .bind(encode_headers(&callback.headers))
            .bind(callback.body.as_slice())
            .bind(callback.slot_id.as_str())
            .bind(i64::try_from(callback.max_per_slot).unwrap_or(i64::MAX))
            .bind(callback.dedup_key.as_str());
    }
    // The statements past the last callback store nothing: no slot has an empty id, and none may
    // hold more than zero callbacks.
    for _ in pending.len()..size {
        query = query
            .bind("")
            .bind(0_i64)
            .bind("")
            .bind(&b""[..])
            .bind("")
            .bind(0_i64)
            .bind("");
    }
    let rows = query.fetch_all(&mut *connection).await?;
    let mut stored = vec![None; pending.len()];
    for row in &rows {
        let sequence: i64 = row.try_get(0)?;
        let index: i64 = row.try_get(1)?;
        if let Some(place) = usize::try_from(index).ok().and_then(|i| stored.get_mut(i)) {
            *place = Some(sequence.unsigned_abs());
        }
    }
    for ((callback, reply), stored) in pending.drain(..).zip(stored) {
        let outcome = match stored {
            Some(sequence) => AddOutcome::Stored { sequence },
            None => unstored_outcome(connection, &callback).await?,
        };
        applied.push(Applied::Added(outcome, reply));
    }
    Ok(())
}

/// The insert of `size` callbacks (a power of two up to [`INSERT_CHUNK`]), with or without the
/// transaction around it.
///
/// Only these few texts are ever run, so the connection caches few prepared statements: one text
/// per batch size would cache 64 variants of up to 64 compiled statements each (tens of MiB).
fn insert_sql(size: usize, own_transaction: bool) -> &'static str {
    static TEXTS: OnceLock<Vec<[String; 2]>> = OnceLock::new();
    let texts = TEXTS.get_or_init(|| {
        (0..=INSERT_CHUNK.trailing_zeros())
            .map(|power| {
                let size = 1 << power;
                let inserts: String = (0..size)
                    .map(|index| INSERT_ONE.replace("{index}", &index.to_string()))
                    .collect();
                [inserts.clone(), format!("BEGIN IMMEDIATE;{inserts}COMMIT;")]
            })
            .collect()
    });
    let power = size
        .clamp(1, INSERT_CHUNK)
        .next_power_of_two()
        .trailing_zeros();
    &texts[power as usize][usize::from(own_transaction)]
}

/// Why a callback was not stored: a repeat, a full slot, or no slot.
async fn unstored_outcome(
    connection: &mut SqliteConnection,
    callback: &NewCallback,
) -> Result<AddOutcome, sqlx::Error> {
    let slot = callback.slot_id.as_str();
    let earlier: Option<i64> =
        sqlx::query_scalar("SELECT sequence FROM callbacks WHERE slot_id = ?1 AND dedup_key = ?2")
            .bind(slot)
            .bind(&callback.dedup_key)
            .fetch_optional(&mut *connection)
            .await?;
    if let Some(sequence) = earlier {
        return Ok(AddOutcome::Duplicate {
            sequence: sequence.unsigned_abs(),
        });
    }
    let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM slots WHERE id = ?1")
        .bind(slot)
        .fetch_optional(&mut *connection)
        .await?;
    Ok(if exists.is_some() {
        AddOutcome::Full
    } else {
        AddOutcome::NoSlot
    })
}
