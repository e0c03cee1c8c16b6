//! Where gates live: one row per `deployment_protection_rule` delivery (its event, its lease, the
//! answer decided and whether it was sent) and the records of each gate's run (each step's
//! journal entry, each callback slot it opened). Kept in the relay's own database, SQLite or
//! PostgreSQL, in tables of their own; the same SQL runs on both.
//!
//! A replica drives a gate only while it holds the gate's lease. Taking a lease is one
//! `UPDATE ... WHERE lease_until < now`: of two replicas racing for one gate, the second finds
//! the lease taken when its turn at the row comes. Every write is made only while the lease is
//! held and unexpired (`lease_owner` and `lease_until > now`), so a replica whose lease ran out
//! (paused, partitioned) cannot write over the one that took the gate over: another replica can
//! take a lease only after it expired, and from then on the old holder's writes match no row.

use std::str::FromStr as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{PgPool, SqlitePool};

/// The tables, created when missing (the statement list is the same on both databases). A
/// gate is one delivery, and also one (repository, environment, run, deployment): the
/// delivery id is a header the signature does not cover, so a signed body sent again under a
/// new id is still the same gate.
const SCHEMA: [&str; 3] = [
    "CREATE TABLE IF NOT EXISTS hookgate_gates (
        delivery TEXT PRIMARY KEY,
        repository TEXT NOT NULL,
        environment TEXT NOT NULL,
        run_id BIGINT NOT NULL,
        deployment_id BIGINT NOT NULL,
        event TEXT NOT NULL,
        received_at BIGINT NOT NULL,
        deadline BIGINT NOT NULL,
        state TEXT NOT NULL,
        answer TEXT,
        comment TEXT,
        lease_owner TEXT,
        lease_until BIGINT NOT NULL DEFAULT 0,
        takes BIGINT NOT NULL DEFAULT 0,
        reports BIGINT NOT NULL DEFAULT 0,
        answered_at BIGINT,
        UNIQUE (repository, environment, run_id, deployment_id)
    )",
    "CREATE INDEX IF NOT EXISTS hookgate_gates_open ON hookgate_gates (state, lease_until)",
    "CREATE TABLE IF NOT EXISTS hookgate_gate_records (
        delivery TEXT NOT NULL,
        name TEXT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (delivery, name)
    )",
];

/// Why the gate store failed.
#[derive(Debug, thiserror::Error)]
pub enum GateStoreError {
    /// The database refused or could not be reached.
    #[error("{context}: {source}")]
    Database {
        /// What was being done.
        context: &'static str,
        /// The database's error.
        #[source]
        source: sqlx::Error,
    },
    /// The store URL is not one of the relay's.
    #[error("unsupported store {0:?}")]
    UnsupportedUrl(String),
    /// A temporary file for a throw-away store could not be made.
    #[error("creating a temporary store file: {0}")]
    TempFile(#[source] std::io::Error),
    /// This replica no longer holds the gate's lease.
    #[error("the gate's lease was lost to another replica")]
    LeaseLost,
}

fn db(context: &'static str) -> impl FnOnce(sqlx::Error) -> GateStoreError {
    move |source| GateStoreError::Database { context, source }
}

enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same statement on whichever database the store has.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.pool {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}

/// A gate as taken from a webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGate {
    /// `X-GitHub-Delivery`: what makes a redelivery the same gate.
    pub delivery: String,
    /// `owner/name`.
    pub repository: String,
    /// The environment.
    pub environment: String,
    /// The workflow run waiting.
    pub run_id: i64,
    /// The deployment (`deployment.id`; 0 when the event names none).
    pub deployment_id: i64,
    /// The event's JSON.
    pub event: String,
    /// When it arrived.
    pub received_at: SystemTime,
    /// When it is rejected for lack of an answer.
    pub deadline: SystemTime,
}

/// A gate as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gate {
    /// The gate's terms.
    pub new: NewGate,
    /// `approved` or `rejected`, once decided.
    pub answer: Option<String>,
    /// The comment sent with the answer.
    pub comment: Option<String>,
    /// How many times a replica took it (more than one: it was resumed).
    pub takes: i64,
}

type GateRow = (
    String,
    String,
    String,
    i64,
    i64,
    String,
    i64,
    i64,
    Option<String>,
    Option<String>,
    i64,
);

fn gate_of(row: GateRow) -> Gate {
    let (delivery, repository, environment, run_id, deployment_id, event) =
        (row.0, row.1, row.2, row.3, row.4, row.5);
    Gate {
        new: NewGate {
            delivery,
            repository,
            environment,
            run_id,
            deployment_id,
            event,
            received_at: from_millis(row.6),
            deadline: from_millis(row.7),
        },
        answer: row.8,
        comment: row.9,
        takes: row.10,
    }
}

/// Milliseconds since the Unix epoch.
pub fn to_millis(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn now_millis() -> i64 {
    to_millis(SystemTime::now())
}

fn from_millis(millis: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(millis).unwrap_or(0))
}

/// The gates and their records.
pub struct GateStore {
    pool: Pool,
    /// Keeps a throw-away SQLite file for as long as the store lives.
    _temporary: Option<tempfile::TempDir>,
}

impl GateStore {
    /// Opens the database a relay `--store` URL names and creates the tables it lacks.
    pub async fn open(url: &str) -> Result<Self, GateStoreError> {
        let (pool, temporary) = if url.starts_with("postgres://")
            || url.starts_with("postgresql://")
        {
            let pool = PgPoolOptions::new()
                .max_connections(4)
                .connect(url)
                .await
                .map_err(db("connecting to PostgreSQL for gates"))?;
            (Pool::Postgres(pool), None)
        } else if let Some(rest) = url.strip_prefix("sqlite:") {
            // As the relay's own store reads the URL: an in-memory store is a private
            // temporary file, so that every pooled connection sees the same tables.
            let (options, temporary) = if rest.contains(":memory:") || rest.contains("mode=memory")
            {
                let dir = tempfile::tempdir().map_err(GateStoreError::TempFile)?;
                let options = SqliteConnectOptions::new().filename(dir.path().join("gates.sqlite"));
                (options, Some(dir))
            } else {
                let options = SqliteConnectOptions::from_str(url)
                    .map_err(db("reading the SQLite store URL"))?;
                (options, None)
            };
            let options = options
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(10));
            let pool = SqlitePoolOptions::new()
                .max_connections(2)
                .connect_with(options)
                .await
                .map_err(db("opening the SQLite file for gates"))?;
            (Pool::Sqlite(pool), temporary)
        } else {
            return Err(GateStoreError::UnsupportedUrl(url.to_owned()));
        };
        let store = GateStore {
            pool,
            _temporary: temporary,
        };
        match &store.pool {
            Pool::Sqlite(pool) => {
                for statement in SCHEMA {
                    sqlx::query(statement)
                        .execute(pool)
                        .await
                        .map_err(db("creating the gate tables"))?;
                }
            }
            Pool::Postgres(pool) => {
                // Replicas starting together would race on CREATE ... IF NOT EXISTS: one at a
                // time, under a lock that ends with the transaction.
                let mut transaction = pool.begin().await.map_err(db("creating the gate tables"))?;
                sqlx::query("SELECT pg_advisory_xact_lock(4242001)")
                    .execute(&mut *transaction)
                    .await
                    .map_err(db("creating the gate tables"))?;
                for statement in SCHEMA {
                    sqlx::query(statement)
                        .execute(&mut *transaction)
                        .await
                        .map_err(db("creating the gate tables"))?;
                }
                transaction
                    .commit()
                    .await
                    .map_err(db("creating the gate tables"))?;
            }
        }
        Ok(store)
    }

    /// Stores a new gate; `false` when a gate with its delivery id exists (a redelivery).
    pub async fn insert(&self, gate: &NewGate) -> Result<bool, GateStoreError> {
        let sql = "INSERT INTO hookgate_gates (delivery, repository, environment, run_id, deployment_id, event, received_at, deadline, state)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'open') ON CONFLICT DO NOTHING";
        let inserted = on_pool!(self, |pool| sqlx::query(sql)
            .bind(&gate.delivery)
            .bind(&gate.repository)
            .bind(&gate.environment)
            .bind(gate.run_id)
            .bind(gate.deployment_id)
            .bind(&gate.event)
            .bind(to_millis(gate.received_at))
            .bind(to_millis(gate.deadline))
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(db("storing a gate")))?;
        Ok(inserted == 1)
    }

    /// Takes up to `limit` open gates whose lease has expired, for `owner`, until `until`.
    pub async fn claim(
        &self,
        owner: &str,
        now: SystemTime,
        until: SystemTime,
        limit: i64,
    ) -> Result<Vec<Gate>, GateStoreError> {
        let sql = "UPDATE hookgate_gates SET lease_owner = $1, lease_until = $2, takes = takes + 1
             WHERE delivery IN (SELECT delivery FROM hookgate_gates
                                WHERE state = 'open' AND lease_until < $3
                                ORDER BY received_at LIMIT $4)
               AND state = 'open' AND lease_until < $3
             RETURNING delivery, repository, environment, run_id, deployment_id, event, received_at, deadline, answer, comment, takes";
        let rows: Vec<GateRow> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(owner)
            .bind(to_millis(until))
            .bind(to_millis(now))
            .bind(limit)
            .fetch_all(pool)
            .await
            .map_err(db("taking gates")))?;
        Ok(rows.into_iter().map(gate_of).collect())
    }

    /// Extends `owner`'s lease on a gate; `false` when the lease is no longer its own.
    pub async fn renew(
        &self,
        delivery: &str,
        owner: &str,
        until: SystemTime,
    ) -> Result<bool, GateStoreError> {
        let sql = "UPDATE hookgate_gates SET lease_until = $1
                   WHERE delivery = $2 AND lease_owner = $3 AND state = 'open'";
        let done = on_pool!(self, |pool| sqlx::query(sql)
            .bind(to_millis(until))
            .bind(delivery)
            .bind(owner)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(db("renewing a gate's lease")))?;
        Ok(done == 1)
    }

    /// Gives a lease up, so another replica (or this one, restarted) takes the gate at once.
    pub async fn release(&self, delivery: &str, owner: &str) -> Result<(), GateStoreError> {
        let sql =
            "UPDATE hookgate_gates SET lease_until = 0 WHERE delivery = $1 AND lease_owner = $2";
        on_pool!(self, |pool| sqlx::query(sql)
            .bind(delivery)
            .bind(owner)
            .execute(pool)
            .await
            .map(|_| ())
            .map_err(db("releasing a gate's lease")))
    }

    /// Writes down the answer decided (before it is sent).
    pub async fn decide(
        &self,
        delivery: &str,
        owner: &str,
        answer: &str,
        comment: &str,
    ) -> Result<(), GateStoreError> {
        let sql = "UPDATE hookgate_gates SET answer = $1, comment = $2
                   WHERE delivery = $3 AND lease_owner = $4 AND state = 'open' AND lease_until > $5";
        let done = on_pool!(self, |pool| sqlx::query(sql)
            .bind(answer)
            .bind(comment)
            .bind(delivery)
            .bind(owner)
            .bind(now_millis())
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(db("writing a gate's answer")))?;
        if done == 1 {
            Ok(())
        } else {
            Err(GateStoreError::LeaseLost)
        }
    }

    /// Writes down that the answer was sent: the gate is closed.
    pub async fn close(&self, delivery: &str, owner: &str) -> Result<(), GateStoreError> {
        let sql = "UPDATE hookgate_gates SET state = 'answered', answered_at = $1, lease_until = 0
                   WHERE delivery = $2 AND lease_owner = $3 AND state = 'open' AND lease_until > $1";
        let done = on_pool!(self, |pool| sqlx::query(sql)
            .bind(now_millis())
            .bind(delivery)
            .bind(owner)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(db("closing a gate")))?;
        if done == 1 {
            Ok(())
        } else {
            Err(GateStoreError::LeaseLost)
        }
    }

    /// Counts one more status report, if fewer than `limit` were sent; `false` when the
    /// limit is reached.
    pub async fn count_report(
        &self,
        delivery: &str,
        owner: &str,
        limit: i64,
    ) -> Result<bool, GateStoreError> {
        let sql = "UPDATE hookgate_gates SET reports = reports + 1
                   WHERE delivery = $1 AND lease_owner = $2 AND reports < $3 AND lease_until > $4";
        let done = on_pool!(self, |pool| sqlx::query(sql)
            .bind(delivery)
            .bind(owner)
            .bind(limit)
            .bind(now_millis())
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(db("counting a status report")))?;
        Ok(done == 1)
    }

    /// Writes a record of a gate, replacing one of the same name, while `owner` holds the lease.
    pub async fn record(
        &self,
        delivery: &str,
        owner: &str,
        name: &str,
        body: &str,
    ) -> Result<(), GateStoreError> {
        let sql = "INSERT INTO hookgate_gate_records (delivery, name, body)
                   SELECT $1, $2, $3 WHERE EXISTS (
                       SELECT 1 FROM hookgate_gates WHERE delivery = $1 AND lease_owner = $4
                       AND state = 'open' AND lease_until > $5)
                   ON CONFLICT (delivery, name) DO UPDATE SET body = excluded.body";
        let done = on_pool!(self, |pool| sqlx::query(sql)
            .bind(delivery)
            .bind(name)
            .bind(body)
            .bind(owner)
            .bind(now_millis())
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(db("writing a gate's record")))?;
        if done == 1 {
            Ok(())
        } else {
            Err(GateStoreError::LeaseLost)
        }
    }

    /// A record of a gate.
    pub async fn recall(
        &self,
        delivery: &str,
        name: &str,
    ) -> Result<Option<String>, GateStoreError> {
        let sql = "SELECT body FROM hookgate_gate_records WHERE delivery = $1 AND name = $2";
        let row: Option<(String,)> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(delivery)
            .bind(name)
            .fetch_optional(pool)
            .await
            .map_err(db("reading a gate's record")))?;
        Ok(row.map(|(body,)| body))
    }

    /// Removes the gates answered before `cutoff`, and their records; returns how many went.
    pub async fn remove_answered_before(&self, cutoff: SystemTime) -> Result<u64, GateStoreError> {
        let records = "DELETE FROM hookgate_gate_records WHERE delivery IN (
                           SELECT delivery FROM hookgate_gates WHERE state = 'answered' AND answered_at < $1)";
        let gates = "DELETE FROM hookgate_gates WHERE state = 'answered' AND answered_at < $1";
        let cutoff = to_millis(cutoff);
        on_pool!(self, |pool| sqlx::query(records)
            .bind(cutoff)
            .execute(pool)
            .await
            .map(|_| ())
            .map_err(db("removing answered gates' records")))?;
        on_pool!(self, |pool| sqlx::query(gates)
            .bind(cutoff)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(db("removing answered gates")))
    }

    /// How many gates are open.
    pub async fn open_count(&self) -> Result<i64, GateStoreError> {
        let sql = "SELECT COUNT(*) FROM hookgate_gates WHERE state = 'open'";
        let (count,): (i64,) = on_pool!(self, |pool| sqlx::query_as(sql)
            .fetch_one(pool)
            .await
            .map_err(db("counting open gates")))?;
        Ok(count)
    }

    /// Closes the connections.
    pub async fn shut(&self) {
        on_pool!(self, |pool| pool.close().await);
    }
}
