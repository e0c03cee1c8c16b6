//! Where the relay keeps slots and callbacks: one [`SlotStore`] trait, a SQLite implementation
//! (one file, the default) and a PostgreSQL one (several replicas on one database). The store is
//! chosen from the `--store` URL at start-up; both run the same SQL migrations, kept per backend
//! under `migrations/`, and the same test suite.

mod postgres;
mod sqlite;
mod waiting;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;
pub use waiting::WaitingStore;

use crate::wakers::Wakers;

pub use hookgate_protocol::{CallbackAuth, Delivery, SlotId};

fn parse_auth(text: &str) -> Result<CallbackAuth, StoreError> {
    text.parse().map_err(StoreError::Corrupt)
}

/// A slot as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// Its id.
    pub id: SlotId,
    /// How its callbacks authenticate.
    pub auth: CallbackAuth,
    /// A label for logs (a step's name); never secret.
    pub label: String,
    /// When it was created.
    pub created_at: SystemTime,
    /// After this instant it takes no callbacks.
    pub deadline: SystemTime,
}

/// A callback to store.
#[derive(Debug, Clone)]
pub struct NewCallback {
    /// The slot it is for.
    pub slot_id: SlotId,
    /// What makes two deliveries the same (a `webhook-id`, or a hash of body and signature).
    pub dedup_key: String,
    /// When it arrived.
    pub received_at: SystemTime,
    /// The request headers, lower-case names, in the order received.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
    /// The most callbacks the slot may hold.
    pub max_per_slot: u64,
}

/// What storing a callback did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddOutcome {
    /// Stored (committed) with this sequence number.
    Stored {
        /// Its sequence number.
        sequence: u64,
    },
    /// The same delivery was stored before, with this sequence number; nothing changed.
    Duplicate {
        /// The first delivery's sequence number.
        sequence: u64,
    },
    /// The slot holds as many callbacks as it may; nothing changed.
    Full,
    /// The slot does not exist (never did, or removed by retention).
    NoSlot,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The `--store` URL is not one the relay understands.
    #[error("unsupported store {0:?}: expected sqlite:PATH, sqlite::memory: or postgres://...")]
    UnsupportedUrl(String),
    /// Opening, migrating or querying the database failed.
    #[error("{context}: {source}")]
    Database {
        /// What the store was doing.
        context: &'static str,
        /// The database's error.
        #[source]
        source: sqlx::Error,
    },
    /// Applying the migrations failed.
    #[error("migrating the store: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A row holds something the relay never writes.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// A temporary file for an in-memory store could not be made.
    #[error("creating a temporary store file: {0}")]
    TempFile(#[source] std::io::Error),
    /// The transaction holding this write failed and was rolled back.
    #[error("writing to the store: {0}")]
    Write(String),
    /// The SQLite writer's thread could not be started.
    #[error("starting the SQLite writer: {0}")]
    Writer(#[source] std::io::Error),
    /// The SQLite writer's connection could not be opened or set up.
    #[error("opening the SQLite writer's connection: {0}")]
    WriterDatabase(#[source] rusqlite::Error),
    /// The store's writer task has stopped.
    #[error("the store is shut down")]
    Closed,
}

impl StoreError {
    fn database(context: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |source| Self::Database { context, source }
    }
}

/// Slots and callbacks, durably.
pub trait SlotStore: Send + Sync + 'static {
    /// Stores a new slot.
    fn create_slot<'a>(&'a self, slot: &'a Slot) -> BoxFuture<'a, Result<(), StoreError>>;

    /// The slot with this id, if there is one.
    fn slot<'a>(&'a self, id: &'a SlotId) -> BoxFuture<'a, Result<Option<Slot>, StoreError>>;

    /// Stores a callback unless it repeats a stored one or the slot is full; committed durably
    /// before it returns.
    fn add_callback(&self, callback: NewCallback) -> BoxFuture<'_, Result<AddOutcome, StoreError>>;

    /// The callbacks of a slot with a sequence number above `after`, oldest first, at most `limit`.
    fn callbacks_after<'a>(
        &'a self,
        slot: &'a SlotId,
        after: u64,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<Delivery>, StoreError>>;

    /// Removes the slots whose deadline is before `cutoff`, and their callbacks; returns how many
    /// slots went.
    fn remove_slots_before(&self, cutoff: SystemTime) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// The secret stored under `name`; stores `candidate` first when there is none, so every
    /// replica on one database ends up with the same secret.
    fn secret_or_insert<'a>(
        &'a self,
        name: &'a str,
        candidate: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, StoreError>>;

    /// Starts waking `wakers` for callbacks that other replicas store (PostgreSQL LISTEN/NOTIFY);
    /// a store that only one process uses does nothing.
    fn wake_on_remote_callbacks(&self, _wakers: Arc<Wakers>, _shutdown: CancellationToken) {}

    /// Finishes pending writes and closes the connections.
    fn close(&self) -> BoxFuture<'_, ()>;
}

/// Opens (creating and migrating) the store a `--store` URL names.
pub async fn open(url: &str) -> Result<Arc<dyn SlotStore>, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::open(url).await?))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_owned()))
    }
}

/// Milliseconds since the Unix epoch (negative before it).
pub(crate) fn to_millis(at: SystemTime) -> i64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// The instant `millis` milliseconds after the Unix epoch.
pub(crate) fn from_millis(millis: i64) -> SystemTime {
    if millis >= 0 {
        UNIX_EPOCH + Duration::from_millis(millis.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_millis(millis.unsigned_abs())
    }
}

fn encode_headers(headers: &[(String, String)]) -> String {
    // A list of pairs serializes infallibly; fall back to an empty list rather than panic.
    serde_json::to_string(headers).unwrap_or_else(|_| "[]".to_owned())
}

fn decode_headers(text: &str) -> Result<Vec<(String, String)>, StoreError> {
    serde_json::from_str(text)
        .map_err(|err| StoreError::Corrupt(format!("stored headers are not a list: {err}")))
}

fn to_sequence(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative sequence {value}")))
}
