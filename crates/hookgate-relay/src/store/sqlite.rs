//! The SQLite store: one file in WAL mode, where a 202 means the callback is on disk. Every write
//! goes through one writer thread that commits whatever is queued in one transaction (group
//! commit). The writer drives its connection directly (rusqlite, the same SQLite library sqlx
//! links), with cached prepared statements. Reads use a small sqlx pool of their own
//! connections, which WAL lets run beside the writer.
//!
//! Durability: the writer commits with `synchronous=FULL`, so a commit returns once the WAL is
//! synced, and only then answers the writes it held; writes that arrive meanwhile queue up and
//! go into the next transaction together. (Committing with `NORMAL` and syncing the WAL in the
//! writer measured the same intake in relay-bench, and let polls see a commit before its sync.)
//! A commit that fails with an I/O error stops the store: every write after it is refused (503)
//! until the relay restarts, since the kernel may have dropped the pages it could not write, and
//! a later sync could succeed without them.
//!
//! `sqlite::memory:` is served by a private temporary file (removed on drop) so that readers and
//! the writer see one database; it skips the syncs, since nothing is meant to survive.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasher as _, RandomState};
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use rusqlite::OptionalExtension as _;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, Row};
use tokio::sync::{mpsc, oneshot};

use super::{
    AddOutcome, Delivery, NewCallback, Slot, SlotId, SlotStore, StoreError, decode_headers,
    encode_headers, from_millis, to_millis, to_sequence,
};

/// Each reader connection's page cache, in KiB (SQLite's negative `cache_size`).
const READER_CACHE_KIB: &str = "-256";
/// The writer's page cache, in KiB: with time-ordered slot ids its inserts keep to the right edge
/// of each index, a few hundred pages, and the operating system's cache serves the rest.
const WRITER_CACHE_KIB: &str = "-1024";
/// Why writes are refused once a commit has failed with an I/O error.
const WRITES_STOPPED: &str =
    "an earlier commit failed to reach the disk (an I/O error); restart the relay";
/// How many queued writes one transaction takes at most.
const MAX_BATCH: usize = 512;
/// How many slots the writer keeps what it stored into at most (see `RecentSlots`).
const RECENT_SLOTS_KEPT: usize = 1_024;
/// How many deliveries' hashes the writer keeps over all slots (8 bytes each) before it keeps
/// only the slot in use.
const RECENT_DELIVERIES_KEPT: usize = 65_536;

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

/// Answers a write that is not applied with `why`.
fn refuse(op: Op, why: &str) {
    let error = || StoreError::Write(why.to_owned());
    match op {
        Op::CreateSlot(_, reply) => drop(reply.send(Err(error()))),
        Op::AddCallback(_, reply) => drop(reply.send(Err(error()))),
        Op::RemoveBefore(_, reply) => drop(reply.send(Err(error()))),
        Op::SecretOrInsert(_, _, reply) => drop(reply.send(Err(error()))),
    }
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

        let mut migrating = options
            .clone()
            .connect()
            .await
            .map_err(StoreError::database("opening the SQLite database"))?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&mut migrating)
            .await?;
        migrating
            .close()
            .await
            .map_err(StoreError::database("closing the migrating connection"))?;
        let writer = open_writer(options.get_filename(), in_memory)?;
        // Readers look up a slot's few newest rows by index: a small page cache each does, and
        // the operating system's cache serves the rest, where 2 MiB each (SQLite's default)
        // would fill up as soon as thousands of long polls have read once.
        let readers = SqlitePoolOptions::new()
            .min_connections(1)
            .max_connections(4)
            .connect_with(options.pragma("cache_size", READER_CACHE_KIB))
            .await
            .map_err(StoreError::database("opening SQLite readers"))?;

        let (writes, queue) = mpsc::channel(4096);
        std::thread::Builder::new()
            .name("sqlite-writer".to_owned())
            .spawn(move || write_loop(writer, queue))
            .map_err(StoreError::Writer)?;
        Ok(Self {
            readers,
            writes,
            _temp_dir: temp_dir,
        })
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
                auth: super::parse_auth(row.get::<&str, _>(0))?,
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
    ) -> BoxFuture<'a, Result<Vec<Delivery>, StoreError>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT sequence, received_at_ms, headers, body FROM callbacks \
                 WHERE slot_ref = (SELECT ref FROM slots WHERE id = ?1) AND sequence > ?2 \
                 ORDER BY sequence LIMIT ?3",
            )
            .bind(slot.as_str())
            .bind(i64::try_from(after).unwrap_or(i64::MAX))
            .bind(i64::from(limit))
            .fetch_all(&self.readers)
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

/// Opens the writer's connection to the migrated database at `path`.
fn open_writer(path: &Path, in_memory: bool) -> Result<rusqlite::Connection, StoreError> {
    let connection = rusqlite::Connection::open(path).map_err(StoreError::WriterDatabase)?;
    connection
        .busy_timeout(Duration::from_secs(10))
        .map_err(StoreError::WriterDatabase)?;
    // Files: each commit syncs the WAL (see the module's documentation).
    let synchronous = if in_memory { "OFF" } else { "FULL" };
    connection
        .execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; PRAGMA foreign_keys = ON; \
             PRAGMA cache_size = {WRITER_CACHE_KIB};"
        ))
        .map_err(StoreError::WriterDatabase)?;
    Ok(connection)
}

/// Takes whatever writes are queued, applies them in one transaction, commits (durably), then
/// answers each; until the store closes or every sender is gone.
fn write_loop(connection: rusqlite::Connection, mut queue: mpsc::Receiver<Write>) {
    // Set when a commit failed with an I/O error; no write is applied from then on.
    let mut stopped = false;
    let mut recent = RecentSlots::new();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut applied = Vec::with_capacity(MAX_BATCH);
    let mut close_reply = None;
    while close_reply.is_none() {
        let Some(first) = queue.blocking_recv() else {
            break;
        };
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        if stopped {
            // Nothing more is applied: its commit could not be trusted to reach the disk.
            for write in batch.drain(..) {
                match write {
                    Write::Close(reply) => close_reply = Some(reply),
                    Write::Op(op) => refuse(op, WRITES_STOPPED),
                }
            }
            continue;
        }
        let result = apply_batch(
            &connection,
            &mut recent,
            &mut batch,
            &mut applied,
            &mut close_reply,
        );
        if let Err(err) = result {
            if err.sqlite_error_code() == Some(rusqlite::ErrorCode::SystemIoFailure) {
                stopped = true;
                tracing::error!(error = %err, "a SQLite commit failed with an I/O error; the store takes no more writes");
            }
            tracing::error!(error = %err, "SQLite write transaction failed");
            // The numbers taken inside the transaction are undone with it.
            recent.forget_all();
            let _ = connection.execute_batch("ROLLBACK");
            let why = err.to_string();
            applied.drain(..).for_each(|write| write.fail(&why));
            // Writes not reached before the failure are dropped: their callers see `Closed` and
            // answer 503, so the sender retries; nothing was committed for them.
            for write in batch.drain(..) {
                if let Write::Close(reply) = write {
                    close_reply = Some(reply);
                }
            }
            continue;
        }
        applied.drain(..).for_each(Applied::commit);
    }
    if let Err((_, err)) = connection.close() {
        tracing::warn!(error = %err, "closing the SQLite writer");
    }
    if let Some(reply) = close_reply {
        let _ = reply.send(());
    }
}

/// Applies `batch` (emptying it) in one transaction and commits it; the applied writes wait in
/// `applied` for the caller to answer them.
fn apply_batch(
    connection: &rusqlite::Connection,
    recent: &mut RecentSlots,
    batch: &mut Vec<Write>,
    applied: &mut Vec<Applied>,
    close_reply: &mut Option<oneshot::Sender<()>>,
) -> rusqlite::Result<()> {
    connection.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    for write in batch.drain(..) {
        match write {
            Write::Close(reply) => *close_reply = Some(reply),
            Write::Op(op) => applied.push(apply(connection, recent, op)?),
        }
    }
    connection.prepare_cached("COMMIT")?.execute([])?;
    Ok(())
}

fn apply(
    connection: &rusqlite::Connection,
    recent: &mut RecentSlots,
    op: Op,
) -> rusqlite::Result<Applied> {
    Ok(match op {
        Op::CreateSlot(slot, reply) => {
            connection
                .prepare_cached(
                    "INSERT INTO slots (id, auth, label, created_at_ms, deadline_ms) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(rusqlite::params![
                    slot.id.as_str(),
                    slot.auth.as_str(),
                    slot.label,
                    to_millis(slot.created_at),
                    to_millis(slot.deadline),
                ])?;
            Applied::Unit(reply)
        }
        Op::AddCallback(callback, reply) => {
            Applied::Added(add_callback(connection, recent, &callback)?, reply)
        }
        Op::RemoveBefore(cutoff, reply) => {
            recent.forget_all();
            connection
                .prepare_cached(
                    "DELETE FROM callbacks WHERE slot_ref IN \
                     (SELECT ref FROM slots WHERE deadline_ms < ?1)",
                )?
                .execute([cutoff])?;
            let removed = connection
                .prepare_cached("DELETE FROM slots WHERE deadline_ms < ?1")?
                .execute([cutoff])?;
            Applied::Removed(u64::try_from(removed).unwrap_or(u64::MAX), reply)
        }
        Op::SecretOrInsert(name, candidate, reply) => {
            connection
                .prepare_cached(
                    "INSERT INTO relay_keys (name, secret, created_at_ms) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (name) DO NOTHING",
                )?
                .execute(rusqlite::params![
                    name,
                    candidate,
                    to_millis(SystemTime::now())
                ])?;
            let secret: Vec<u8> = connection
                .prepare_cached("SELECT secret FROM relay_keys WHERE name = ?1")?
                .query_row([&name], |row| row.get(0))?;
            Applied::Secret(secret, reply)
        }
    })
}

/// What the writer knows of the slots it stored into lately: each one's number in the file, its
/// last sequence number and a hash of each delivery stored into it, so that storing a callback
/// needs neither a lookup of the slot or its last number nor an index of deliveries in the
/// file. Only the writer stores callbacks, so what is kept here is the store's, except after a
/// failed transaction or a removal of slots, which empty it. Should another process write to
/// the file all the same, the insert of a number it took fails on the primary key and the slot
/// is read again; should it remove a slot, the insert fails on the foreign key.
///
/// The hashes are keyed at random per process, so nobody can choose a delivery whose hash
/// matches another's; a match is still confirmed against the file before a callback is answered
/// as a repeat. Looking for a repeat takes time in proportion to the slot's callbacks, which
/// `--max-callbacks-per-slot` bounds (100 by default).
struct RecentSlots {
    slots: HashMap<u128, SlotLog>,
    hashes: RandomState,
    /// The deliveries' hashes kept, over all slots.
    deliveries: usize,
}

/// One slot's number in the file (`slots.ref`), last sequence number and the hashes of its
/// deliveries' keys.
struct SlotLog {
    slot_ref: i64,
    last: i64,
    deliveries: Vec<u64>,
}

impl RecentSlots {
    fn new() -> Self {
        Self {
            slots: HashMap::new(),
            hashes: RandomState::new(),
            deliveries: 0,
        }
    }

    /// The slot's log, read from the file when it is not kept; `None` when the file has no such
    /// slot.
    fn log(
        &mut self,
        connection: &rusqlite::Connection,
        slot: &SlotId,
    ) -> rusqlite::Result<Option<&mut SlotLog>> {
        let key = slot.as_u128();
        if (self.slots.len() >= RECENT_SLOTS_KEPT || self.deliveries >= RECENT_DELIVERIES_KEPT)
            && !self.slots.contains_key(&key)
        {
            self.forget_all();
        }
        let hashes = &self.hashes;
        Ok(Some(match self.slots.entry(key) {
            Entry::Occupied(kept) => kept.into_mut(),
            Entry::Vacant(vacant) => {
                let slot_ref: Option<i64> = connection
                    .prepare_cached("SELECT ref FROM slots WHERE id = ?1")?
                    .query_row([slot.as_str()], |row| row.get(0))
                    .optional()?;
                let Some(slot_ref) = slot_ref else {
                    return Ok(None);
                };
                let mut log = SlotLog {
                    slot_ref,
                    last: 0,
                    deliveries: Vec::new(),
                };
                let mut statement = connection.prepare_cached(
                    "SELECT sequence, dedup_key FROM callbacks WHERE slot_ref = ?1",
                )?;
                let mut rows = statement.query([slot_ref])?;
                while let Some(row) = rows.next()? {
                    log.last = log.last.max(row.get(0)?);
                    log.deliveries
                        .push(hashes.hash_one(row.get_ref(1)?.as_str()?));
                }
                self.deliveries += log.deliveries.len();
                vacant.insert(log)
            }
        }))
    }

    /// Past the bound on deliveries, keeps only `slot`'s (which a slot allowed many callbacks may
    /// take beyond it).
    fn keep_within_bounds(&mut self, slot: &SlotId) {
        if self.deliveries > RECENT_DELIVERIES_KEPT {
            let kept = slot.as_u128();
            self.slots.retain(|key, _| *key == kept);
            self.deliveries = self.slots.values().map(|log| log.deliveries.len()).sum();
        }
    }

    fn forget(&mut self, slot: &SlotId) {
        if let Some(log) = self.slots.remove(&slot.as_u128()) {
            self.deliveries -= log.deliveries.len();
        }
    }

    fn forget_all(&mut self) {
        self.slots.clear();
        self.deliveries = 0;
    }
}

/// Stores one callback if its slot exists, it repeats no stored delivery and the slot has room.
/// A new callback to a slot the writer knows (the common case) takes one statement, the insert,
/// whose foreign key tells a slot another process removed since (slot numbers are never
/// reused). A repeat is found by its hash in `recent` and then confirmed in the file. An
/// `INSERT ... SELECT ... RETURNING` had SQLite build a temporary table for every callback, and a
/// unique index of deliveries made each insert cost about twice as much.
fn add_callback(
    connection: &rusqlite::Connection,
    recent: &mut RecentSlots,
    callback: &NewCallback,
) -> rusqlite::Result<AddOutcome> {
    let slot = &callback.slot_id;
    let delivery = recent.hashes.hash_one(callback.dedup_key.as_str());
    let Some(log) = recent.log(connection, slot)? else {
        return Ok(AddOutcome::NoSlot);
    };
    let slot_ref = log.slot_ref;
    if log.deliveries.contains(&delivery)
        && let Some(sequence) = earlier_delivery(connection, slot_ref, &callback.dedup_key)?
    {
        return Ok(AddOutcome::Duplicate { sequence });
    }
    if log.last.unsigned_abs() >= callback.max_per_slot {
        return Ok(if slot_exists(connection, slot_ref)? {
            AddOutcome::Full
        } else {
            AddOutcome::NoSlot
        });
    }
    let sequence = log.last + 1;
    let inserted = connection
        .prepare_cached(
            "INSERT INTO callbacks \
             (slot_ref, sequence, dedup_key, received_at_ms, headers, body) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(rusqlite::params![
            slot_ref,
            sequence,
            callback.dedup_key,
            to_millis(callback.received_at),
            encode_headers(&callback.headers),
            callback.body,
        ]);
    match inserted {
        Ok(_) => {
            log.last = sequence;
            log.deliveries.push(delivery);
            recent.deliveries += 1;
            recent.keep_within_bounds(slot);
            Ok(AddOutcome::Stored {
                sequence: sequence.unsigned_abs(),
            })
        }
        Err(rusqlite::Error::SqliteFailure(failure, _))
            if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            // Another process stored into the slot: read it again and start over.
            recent.forget(slot);
            match recent.log(connection, slot)? {
                Some(log) if log.last >= sequence => add_callback(connection, recent, callback),
                Some(_) => Err(rusqlite::Error::SqliteFailure(failure, None)),
                None => Ok(AddOutcome::NoSlot),
            }
        }
        Err(rusqlite::Error::SqliteFailure(failure, _))
            if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY =>
        {
            recent.forget(slot);
            Ok(AddOutcome::NoSlot)
        }
        Err(err) => Err(err),
    }
}

/// The sequence number of the delivery with `dedup_key` stored into slot number `slot_ref`, if
/// any.
fn earlier_delivery(
    connection: &rusqlite::Connection,
    slot_ref: i64,
    dedup_key: &str,
) -> rusqlite::Result<Option<u64>> {
    let earlier: Option<i64> = connection
        .prepare_cached("SELECT sequence FROM callbacks WHERE slot_ref = ?1 AND dedup_key = ?2")?
        .query_row(rusqlite::params![slot_ref, dedup_key], |row| row.get(0))
        .optional()?;
    Ok(earlier.map(i64::unsigned_abs))
}

fn slot_exists(connection: &rusqlite::Connection, slot_ref: i64) -> rusqlite::Result<bool> {
    let exists: Option<i64> = connection
        .prepare_cached("SELECT 1 FROM slots WHERE ref = ?1")?
        .query_row([slot_ref], |row| row.get(0))
        .optional()?;
    Ok(exists.is_some())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const SLOT_A: &str = "0190a1b2c3d4e5f60718293a4b5c6d7e";
    const SLOT_B: &str = "0190a1b2c3d4e5f60718293a4b5c6d7f";

    fn log_of(deliveries: usize) -> SlotLog {
        SlotLog {
            slot_ref: 1,
            last: i64::try_from(deliveries).unwrap(),
            deliveries: (0..deliveries as u64).collect(),
        }
    }

    #[test]
    fn past_the_bound_on_deliveries_only_the_slot_in_use_is_kept() {
        let mut recent = RecentSlots::new();
        let slot_b: SlotId = SLOT_B.parse().unwrap();
        let (a, b) = (
            SLOT_A.parse::<SlotId>().unwrap().as_u128(),
            slot_b.as_u128(),
        );
        recent.slots.insert(a, log_of(RECENT_DELIVERIES_KEPT / 2));
        recent.slots.insert(b, log_of(RECENT_DELIVERIES_KEPT / 2));
        recent.deliveries = RECENT_DELIVERIES_KEPT;

        // At the bound, nothing goes.
        recent.keep_within_bounds(&slot_b);
        assert_eq!(recent.slots.len(), 2);

        // Past it, the other slot goes and the count follows.
        if let Some(log) = recent.slots.get_mut(&b) {
            log.deliveries.push(u64::MAX);
        }
        recent.deliveries += 1;
        recent.keep_within_bounds(&slot_b);
        assert_eq!(recent.slots.keys().copied().collect::<Vec<_>>(), [b]);
        assert_eq!(recent.deliveries, RECENT_DELIVERIES_KEPT / 2 + 1);

        recent.forget(&slot_b);
        assert!(recent.slots.is_empty());
        assert_eq!(recent.deliveries, 0);
    }
}
