//! The store suite: the same cases against a SQLite file and the machine's PostgreSQL (a fresh
//! schema per test, so tests run in parallel without seeing each other's rows). The PostgreSQL
//! server is taken from `HOOKGATE_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/test`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hookgate_relay::store::{
    self, AddOutcome, CallbackAuth, NewCallback, Slot, SlotId, SlotStore, SqliteStore,
};
use hookgate_relay::wakers::Wakers;
use sqlx::Connection;
use tokio_util::sync::CancellationToken;

fn postgres_base() -> String {
    std::env::var("HOOKGATE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A fresh schema on the test server, and the store URL that selects it.
async fn postgres_schema() -> String {
    let schema = format!("hg_store_{}", uuid::Uuid::new_v4().simple());
    let mut connection = sqlx::PgConnection::connect(&postgres_base()).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut connection)
        .await
        .unwrap();
    format!("{}?options=-c%20search_path%3D{schema}", postgres_base())
}

enum Backend {
    Sqlite(tempfile::TempDir),
    Postgres(String),
}

impl Backend {
    async fn new_sqlite() -> Self {
        Self::Sqlite(tempfile::tempdir().unwrap())
    }

    async fn new_postgres() -> Self {
        Self::Postgres(postgres_schema().await)
    }

    fn url(&self) -> String {
        match self {
            Self::Sqlite(dir) => format!("sqlite:{}", dir.path().join("relay.sqlite").display()),
            Self::Postgres(url) => url.clone(),
        }
    }

    async fn open(&self) -> Arc<dyn SlotStore> {
        store::open(&self.url()).await.unwrap()
    }

    /// Drops a PostgreSQL test schema (a SQLite directory goes with the value).
    async fn clean_up(self) {
        if let Self::Postgres(url) = &self {
            let schema = url.rsplit("search_path%3D").next().unwrap().to_owned();
            let mut connection = sqlx::PgConnection::connect(&postgres_base()).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(&mut connection)
                .await
                .unwrap();
        }
    }
}

fn slot(deadline_in: Duration) -> Slot {
    Slot {
        id: SlotId::random(),
        auth: CallbackAuth::HmacStandard,
        label: "integration tests".to_owned(),
        created_at: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
        deadline: SystemTime::now() + deadline_in,
    }
}

fn delivery(slot: &Slot, key: &str, body: &[u8]) -> NewCallback {
    NewCallback {
        slot_id: slot.id.clone(),
        dedup_key: key.to_owned(),
        received_at: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_001_456),
        headers: vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("webhook-id".to_owned(), key.to_owned()),
            ("x-multi".to_owned(), "a".to_owned()),
            ("x-multi".to_owned(), "b".to_owned()),
        ],
        body: body.to_vec(),
        max_per_slot: 3,
    }
}

async fn slots_round_trip(backend: &Backend) {
    let store = backend.open().await;
    let slot = slot(Duration::from_secs(600));
    store.create_slot(&slot).await.unwrap();
    let read = store
        .slot(&slot.id)
        .await
        .unwrap()
        .expect("the slot is stored");
    assert_eq!(read.id, slot.id);
    assert_eq!(read.auth, CallbackAuth::HmacStandard);
    assert_eq!(read.label, "integration tests");
    assert_eq!(read.created_at, slot.created_at);
    // Stored to the millisecond.
    let drift = read
        .deadline
        .duration_since(slot.deadline)
        .unwrap_or_else(|e| e.duration());
    assert!(
        drift < Duration::from_millis(1),
        "deadline drifted by {drift:?}"
    );
    assert_eq!(store.slot(&SlotId::random()).await.unwrap(), None);
}

async fn callbacks_in_order_and_untouched(backend: &Backend) {
    let store = backend.open().await;
    let slot = slot(Duration::from_secs(600));
    store.create_slot(&slot).await.unwrap();
    let raw = b"{\"success\": true,  \"mdMessage\": \"\\u00e9 ok\"}\n";
    assert_eq!(
        store
            .add_callback(delivery(&slot, "msg_1", raw))
            .await
            .unwrap(),
        AddOutcome::Stored { sequence: 1 }
    );
    assert_eq!(
        store
            .add_callback(delivery(&slot, "msg_2", b"{\"success\":false}"))
            .await
            .unwrap(),
        AddOutcome::Stored { sequence: 2 }
    );
    let all = store.callbacks_after(&slot.id, 0, 100).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].sequence, 1);
    assert_eq!(all[0].body, raw.to_vec());
    assert_eq!(all[0].headers, delivery(&slot, "msg_1", raw).headers);
    assert_eq!(
        all[0].received_at,
        SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_001_456)
    );
    assert_eq!(all[1].body, b"{\"success\":false}".to_vec());
    let later = store.callbacks_after(&slot.id, 1, 100).await.unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].sequence, 2);
    assert!(
        store
            .callbacks_after(&slot.id, 2, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.callbacks_after(&slot.id, 0, 1).await.unwrap().len(),
        1
    );
}

async fn repeats_stored_once_and_slots_bounded(backend: &Backend) {
    let store = backend.open().await;
    let slot = slot(Duration::from_secs(600));
    store.create_slot(&slot).await.unwrap();
    for key in ["a", "b", "c"] {
        store
            .add_callback(delivery(&slot, key, b"{\"success\":true}"))
            .await
            .unwrap();
    }
    assert_eq!(
        store
            .add_callback(delivery(&slot, "b", b"{\"success\":true}"))
            .await
            .unwrap(),
        AddOutcome::Duplicate { sequence: 2 }
    );
    assert_eq!(
        store
            .add_callback(delivery(&slot, "d", b"{\"success\":true}"))
            .await
            .unwrap(),
        AddOutcome::Full
    );
    assert_eq!(
        store.callbacks_after(&slot.id, 0, 100).await.unwrap().len(),
        3
    );
    let unknown = Slot {
        id: SlotId::random(),
        ..slot.clone()
    };
    assert_eq!(
        store
            .add_callback(delivery(&unknown, "a", b"{}"))
            .await
            .unwrap(),
        AddOutcome::NoSlot
    );
}

async fn concurrent_deliveries_get_distinct_sequences(backend: &Backend) {
    let store = backend.open().await;
    let slot = slot(Duration::from_secs(600));
    store.create_slot(&slot).await.unwrap();
    let adds = (0..40).map(|n| {
        let store = store.clone();
        let mut callback = delivery(&slot, &format!("k{n}"), b"{\"success\":true}");
        callback.max_per_slot = 1000;
        tokio::spawn(async move { store.add_callback(callback).await.unwrap() })
    });
    let mut sequences: Vec<u64> = futures::future::join_all(adds)
        .await
        .into_iter()
        .map(|outcome| match outcome.unwrap() {
            AddOutcome::Stored { sequence } => sequence,
            other => panic!("expected stored, got {other:?}"),
        })
        .collect();
    sequences.sort_unstable();
    assert_eq!(sequences, (1..=40).collect::<Vec<_>>());
}

async fn concurrent_repeats_are_stored_once(backend: &Backend) {
    let store = backend.open().await;
    let slot = slot(Duration::from_secs(600));
    store.create_slot(&slot).await.unwrap();
    // The same delivery many times at once, between distinct ones: likely in one write batch.
    let adds = (0..30).map(|n| {
        let store = store.clone();
        let key = if n % 2 == 0 {
            "same".to_owned()
        } else {
            format!("other-{n}")
        };
        let mut callback = delivery(&slot, &key, b"{\"success\":true}");
        callback.max_per_slot = 1000;
        tokio::spawn(async move { store.add_callback(callback).await.unwrap() })
    });
    let outcomes = futures::future::join_all(adds).await;
    let stored = outcomes
        .iter()
        .filter(|outcome| matches!(outcome.as_ref().unwrap(), AddOutcome::Stored { .. }))
        .count();
    let repeats = outcomes
        .iter()
        .filter(|outcome| matches!(outcome.as_ref().unwrap(), AddOutcome::Duplicate { .. }))
        .count();
    assert_eq!((stored, repeats), (16, 14));
    assert_eq!(
        store.callbacks_after(&slot.id, 0, 100).await.unwrap().len(),
        16
    );
}

/// One batch that fills a slot past its limit, repeats deliveries and names a slot that does not
/// exist: every outcome is the one a callback alone would have had.
async fn a_mixed_batch_gets_each_callback_its_own_outcome(backend: &Backend) {
    let store = backend.open().await;
    let slot = slot(Duration::from_secs(600));
    store.create_slot(&slot).await.unwrap();
    let unknown = Slot {
        id: SlotId::random(),
        ..slot.clone()
    };
    // 3 to a slot that does not exist; 21 to one that takes 5, with keys k0..k2 repeated and 10
    // keys seen once: one batch or a few, in whatever order the writer takes them.
    let adds = (0..24).map(|n| {
        let store = store.clone();
        let (target, key) = match n {
            _ if n % 8 == 7 => (&unknown, format!("nowhere{n}")),
            _ if n < 12 => (&slot, format!("k{}", n % 3)),
            _ => (&slot, format!("once{n}")),
        };
        let mut callback = delivery(target, &key, b"{\"success\":true}");
        callback.max_per_slot = 5;
        let to_unknown = target.id == unknown.id;
        tokio::spawn(async move {
            let outcome = store.add_callback(callback).await.unwrap();
            (to_unknown, key, outcome)
        })
    });
    let outcomes: Vec<(bool, String, AddOutcome)> = futures::future::join_all(adds)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let mut stored: HashMap<&str, u64> = HashMap::new();
    for (to_unknown, key, outcome) in &outcomes {
        match outcome {
            AddOutcome::NoSlot => assert!(to_unknown, "{outcomes:?}"),
            AddOutcome::Stored { sequence } => {
                assert!(stored.insert(key, *sequence).is_none(), "{outcomes:?}");
            }
            AddOutcome::Duplicate { .. } | AddOutcome::Full => assert!(!to_unknown),
        }
    }
    let mut sequences: Vec<u64> = stored.values().copied().collect();
    sequences.sort_unstable();
    assert_eq!(sequences, vec![1, 2, 3, 4, 5], "{outcomes:?}");
    // A repeat of a stored key is a duplicate of it; a key never stored found the slot full.
    for (to_unknown, key, outcome) in &outcomes {
        let expected = match stored.get(key.as_str()) {
            _ if *to_unknown => AddOutcome::NoSlot,
            Some(&sequence) if *outcome != (AddOutcome::Stored { sequence }) => {
                AddOutcome::Duplicate { sequence }
            }
            Some(&sequence) => AddOutcome::Stored { sequence },
            None => AddOutcome::Full,
        };
        assert_eq!(*outcome, expected, "{key}: {outcomes:?}");
    }
    assert_eq!(
        store.callbacks_after(&slot.id, 0, 100).await.unwrap().len(),
        5
    );
}

async fn retention_removes_expired_slots(backend: &Backend) {
    let store = backend.open().await;
    let expired = slot(Duration::ZERO);
    let expired = Slot {
        deadline: SystemTime::now() - Duration::from_secs(3600),
        ..expired
    };
    let live = slot(Duration::from_secs(600));
    store.create_slot(&expired).await.unwrap();
    store.create_slot(&live).await.unwrap();
    store
        .add_callback(delivery(&expired, "x", b"{\"success\":true}"))
        .await
        .unwrap();
    store
        .add_callback(delivery(&live, "x", b"{\"success\":true}"))
        .await
        .unwrap();
    let removed = store
        .remove_slots_before(SystemTime::now() - Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(removed, 1);
    assert_eq!(store.slot(&expired.id).await.unwrap(), None);
    assert!(
        store
            .callbacks_after(&expired.id, 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.slot(&live.id).await.unwrap().is_some());
    assert_eq!(
        store.callbacks_after(&live.id, 0, 10).await.unwrap().len(),
        1
    );
}

async fn first_secret_wins(backend: &Backend) {
    let store = backend.open().await;
    let first = store
        .secret_or_insert("slot-tokens", b"first".to_vec())
        .await
        .unwrap();
    assert_eq!(first, b"first".to_vec());
    // A second replica (another connection) proposing its own key gets the first one.
    let other = backend.open().await;
    let second = other
        .secret_or_insert("slot-tokens", b"second".to_vec())
        .await
        .unwrap();
    assert_eq!(second, b"first".to_vec());
}

async fn committed_callbacks_survive_reopening(backend: &Backend) {
    let store = backend.open().await;
    let slot = slot(Duration::from_secs(600));
    store.create_slot(&slot).await.unwrap();
    store
        .add_callback(delivery(&slot, "kept", b"{\"success\":true}"))
        .await
        .unwrap();
    store.close().await;
    drop(store);
    let reopened = backend.open().await;
    let kept = reopened.callbacks_after(&slot.id, 0, 10).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].body, b"{\"success\":true}".to_vec());
    // What the store knew of the slot's deliveries is known again after the restart.
    assert_eq!(
        reopened
            .add_callback(delivery(&slot, "kept", b"{\"success\":true}"))
            .await
            .unwrap(),
        AddOutcome::Duplicate { sequence: 1 }
    );
    assert_eq!(
        reopened
            .add_callback(delivery(&slot, "new", b"{\"success\":false}"))
            .await
            .unwrap(),
        AddOutcome::Stored { sequence: 2 }
    );
}

macro_rules! per_backend {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let backend = super::Backend::new_sqlite().await;
                    super::$case(&backend).await;
                    backend.clean_up().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let backend = super::Backend::new_postgres().await;
                    super::$case(&backend).await;
                    backend.clean_up().await;
                }
            )*
        }
    };
}

per_backend!(
    slots_round_trip,
    callbacks_in_order_and_untouched,
    repeats_stored_once_and_slots_bounded,
    concurrent_deliveries_get_distinct_sequences,
    concurrent_repeats_are_stored_once,
    a_mixed_batch_gets_each_callback_its_own_outcome,
    retention_removes_expired_slots,
    first_secret_wins,
    committed_callbacks_survive_reopening,
);

#[tokio::test]
async fn in_memory_sqlite_store_works() {
    let store = SqliteStore::open("sqlite::memory:").await.unwrap();
    let slot = slot(Duration::from_secs(60));
    store.create_slot(&slot).await.unwrap();
    store
        .add_callback(delivery(&slot, "m", b"{\"success\":true}"))
        .await
        .unwrap();
    assert_eq!(
        store.callbacks_after(&slot.id, 0, 10).await.unwrap().len(),
        1
    );
}

/// The SQLite writer keeps each slot's last sequence number; should another connection store a
/// callback into the file all the same, the next callback still gets a number of its own and
/// neither is lost.
#[tokio::test]
async fn sqlite_sequences_stay_distinct_when_another_connection_writes() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("relay.sqlite").display());
    let store = SqliteStore::open(&url).await.unwrap();
    let slot = slot(Duration::from_secs(60));
    store.create_slot(&slot).await.unwrap();
    let mut first = delivery(&slot, "first", b"{\"success\":true}");
    first.max_per_slot = 10;
    assert_eq!(
        store.add_callback(first).await.unwrap(),
        AddOutcome::Stored { sequence: 1 }
    );

    let mut outside = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO callbacks (slot_ref, sequence, dedup_key, received_at_ms, headers, body) \
         VALUES ((SELECT ref FROM slots WHERE id = ?1), 2, 'outside', 0, '[]', ?2)",
    )
    .bind(slot.id.as_str())
    .bind(&b"{\"success\":false}"[..])
    .execute(&mut outside)
    .await
    .unwrap();
    outside.close().await.unwrap();

    let mut third = delivery(&slot, "third", b"{\"success\":true}");
    third.max_per_slot = 10;
    assert_eq!(
        store.add_callback(third).await.unwrap(),
        AddOutcome::Stored { sequence: 3 }
    );
    let stored = store.callbacks_after(&slot.id, 0, 10).await.unwrap();
    let bodies: Vec<(u64, &[u8])> = stored
        .iter()
        .map(|callback| (callback.sequence, callback.body.as_slice()))
        .collect();
    assert_eq!(
        bodies,
        [
            (1, &b"{\"success\":true}"[..]),
            (2, &b"{\"success\":false}"[..]),
            (3, &b"{\"success\":true}"[..]),
        ]
    );
}

/// A SQLite file from before migration 0004 (which rebuilds the callbacks table without its
/// unique index of deliveries) keeps its callbacks, and their deliveries are still told apart
/// from new ones.
#[tokio::test]
async fn sqlite_callbacks_stored_before_0004_are_kept_and_still_repeat() {
    old_file_keeps_its_callbacks("0004").await;
}

/// The same for a file from before migration 0005 (which rebuilds both tables so that callbacks
/// refer to their slot by its number).
#[tokio::test]
async fn sqlite_callbacks_stored_before_0005_are_kept_and_still_repeat() {
    old_file_keeps_its_callbacks("0005").await;
}

/// Builds a file with the SQLite migrations before `first_missing`, holding two callbacks of a
/// live slot and one of an expired slot, then opens it with every migration: the live slot's
/// callbacks are read back, a repeat of one is recognized, a new one gets the next number, and
/// the expired slot goes with its callback.
async fn old_file_keeps_its_callbacks(first_missing: &str) {
    let old_migrations = tempfile::tempdir().unwrap();
    let migrations = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    for entry in std::fs::read_dir(&migrations).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name.as_str() < first_missing {
            std::fs::copy(&path, old_migrations.path().join(name)).unwrap();
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("relay.sqlite").display());
    let slot = slot(Duration::from_secs(600));
    let expired = SlotId::random();
    let millis = |time: SystemTime| {
        i64::try_from(
            time.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap()
    };
    {
        let options: sqlx::sqlite::SqliteConnectOptions = url.parse().unwrap();
        let mut old = sqlx::SqliteConnection::connect_with(&options.create_if_missing(true))
            .await
            .unwrap();
        sqlx::migrate::Migrator::new(old_migrations.path())
            .await
            .unwrap()
            .run(&mut old)
            .await
            .unwrap();
        // The expired slot is created last, so it holds the highest number after 0005.
        for (id, created_at_ms, deadline) in [
            (&slot.id, 0, slot.deadline),
            (&expired, 1, SystemTime::now() - Duration::from_secs(3600)),
        ] {
            sqlx::query(
                "INSERT INTO slots (id, auth, label, created_at_ms, deadline_ms) \
                 VALUES (?1, 'hmac-standard', 'old', ?2, ?3)",
            )
            .bind(id.as_str())
            .bind(created_at_ms)
            .bind(millis(deadline))
            .execute(&mut old)
            .await
            .unwrap();
        }
        for (id, sequence, key) in [
            (&slot.id, 1, "first"),
            (&expired, 1, "expired"),
            (&slot.id, 2, "second"),
        ] {
            sqlx::query(
                "INSERT INTO callbacks (slot_id, sequence, dedup_key, received_at_ms, headers, body) \
                 VALUES (?1, ?2, ?3, 0, '[]', ?4)",
            )
            .bind(id.as_str())
            .bind(sequence)
            .bind(key)
            .bind(format!("{{\"success\":true,\"n\":{sequence}}}").into_bytes())
            .execute(&mut old)
            .await
            .unwrap();
        }
        old.close().await.unwrap();
    }

    let store = SqliteStore::open(&url).await.unwrap();
    let kept = store.callbacks_after(&slot.id, 0, 10).await.unwrap();
    let bodies: Vec<(u64, String)> = kept
        .iter()
        .map(|callback| {
            (
                callback.sequence,
                String::from_utf8(callback.body.clone()).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        bodies,
        [
            (1, "{\"success\":true,\"n\":1}".to_owned()),
            (2, "{\"success\":true,\"n\":2}".to_owned()),
        ]
    );
    let mut repeat = delivery(&slot, "second", b"{\"success\":true}");
    repeat.max_per_slot = 10;
    assert_eq!(
        store.add_callback(repeat).await.unwrap(),
        AddOutcome::Duplicate { sequence: 2 }
    );
    let mut new = delivery(&slot, "third", b"{\"success\":true}");
    new.max_per_slot = 10;
    assert_eq!(
        store.add_callback(new).await.unwrap(),
        AddOutcome::Stored { sequence: 3 }
    );

    assert_eq!(
        store.callbacks_after(&expired, 0, 10).await.unwrap().len(),
        1
    );
    let cutoff = SystemTime::now() - Duration::from_secs(60);
    assert_eq!(store.remove_slots_before(cutoff).await.unwrap(), 1);
    assert_eq!(store.slot(&expired).await.unwrap(), None);
    assert_eq!(
        store.callbacks_after(&slot.id, 0, 10).await.unwrap().len(),
        3
    );
    // The expired slot's callback went with it; the next slot starts empty, with a number of
    // its own (the expired slot's is not reused).
    let later = self::slot(Duration::from_secs(600));
    store.create_slot(&later).await.unwrap();
    assert!(
        store
            .callbacks_after(&later.id, 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    store.close().await;

    let mut file = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM callbacks")
        .fetch_one(&mut file)
        .await
        .unwrap();
    assert_eq!(rows, 3);
    let parents: Vec<String> =
        sqlx::query_scalar("SELECT \"table\" FROM pragma_foreign_key_list('callbacks')")
            .fetch_all(&mut file)
            .await
            .unwrap();
    assert_eq!(parents, ["slots"]);
    let numbers: Vec<i64> = sqlx::query_scalar("SELECT ref FROM slots ORDER BY ref")
        .fetch_all(&mut file)
        .await
        .unwrap();
    assert_eq!(numbers, [1, 3]);
    file.close().await.unwrap();
}

#[tokio::test]
async fn postgres_callbacks_wake_waiters_on_another_replica() {
    let backend = Backend::new_postgres().await;
    let replica_a = backend.open().await;
    let replica_b = backend.open().await;
    let wakers_b = Arc::new(Wakers::default());
    let shutdown = CancellationToken::new();
    replica_b.wake_on_remote_callbacks(wakers_b.clone(), shutdown.clone());

    // The listener connects in the background and wakes everyone once connected; warm up on one
    // slot until B hears something, then check that a single callback on another slot wakes B.
    let warm_up = slot(Duration::from_secs(600));
    replica_a.create_slot(&warm_up).await.unwrap();
    let mut listening = false;
    for attempt in 0..50 {
        let registration = wakers_b.register(&warm_up.id);
        let woken = registration.notify().notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        replica_a
            .add_callback(NewCallback {
                max_per_slot: 100,
                ..delivery(&warm_up, &format!("warm-{attempt}"), b"{\"success\":true}")
            })
            .await
            .unwrap();
        if tokio::time::timeout(Duration::from_millis(200), woken)
            .await
            .is_ok()
        {
            listening = true;
            break;
        }
    }
    assert!(listening, "replica B never started listening");

    let slot = slot(Duration::from_secs(600));
    replica_a.create_slot(&slot).await.unwrap();
    let registration = wakers_b.register(&slot.id);
    let woken = registration.notify().notified();
    tokio::pin!(woken);
    woken.as_mut().enable();
    // A slot that gets no callback (the warm-up slot may still have a NOTIFY in flight).
    let bystander = SlotId::random();
    let other = wakers_b.register(&bystander);
    let not_woken = other.notify().notified();
    tokio::pin!(not_woken);
    not_woken.as_mut().enable();
    replica_a
        .add_callback(delivery(&slot, "the-one", b"{\"success\":true}"))
        .await
        .unwrap();
    let heard = tokio::time::timeout(Duration::from_secs(10), woken)
        .await
        .is_ok();
    shutdown.cancel();
    assert!(heard, "replica B was not woken by a callback stored on A");
    // Only the slot that got a callback was woken.
    assert!(
        futures::FutureExt::now_or_never(not_woken).is_none(),
        "a waiter on another slot was woken"
    );
    replica_a.close().await;
    replica_b.close().await;
    backend.clean_up().await;
}

/// The server closes every connection of a relay (a restart, an idle timeout, an administrator):
/// the next callback is still stored and answered, and slots and reads still work, each on a
/// fresh connection.
#[tokio::test]
async fn postgres_connections_closed_by_the_server_cost_no_callback() {
    let backend = Backend::new_postgres().await;
    let name = format!("hg_cut_{}", uuid::Uuid::new_v4().simple());
    let store = store::open(&format!("{}&application_name={name}", backend.url()))
        .await
        .unwrap();
    let first = slot(Duration::from_secs(600));
    store.create_slot(&first).await.unwrap();
    let outcome = store
        .add_callback(delivery(&first, "before", b"{}"))
        .await
        .unwrap();
    assert_eq!(outcome, AddOutcome::Stored { sequence: 1 });
    // Two reads at once, so the pool holds more than one idle connection to lose.
    let (a, b) = tokio::join!(
        store.callbacks_after(&first.id, 0, 10),
        store.callbacks_after(&first.id, 0, 10)
    );
    assert_eq!((a.unwrap().len(), b.unwrap().len()), (1, 1));

    let mut admin = sqlx::PgConnection::connect(&postgres_base()).await.unwrap();
    let closed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = $1) AS t",
    )
    .bind(&name)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert!(closed >= 2, "only {closed} connections were closed");
    // The server has closed them once none is left.
    for _ in 0..100 {
        let left: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1")
                .bind(&name)
                .fetch_one(&mut admin)
                .await
                .unwrap();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let outcome = store
        .add_callback(delivery(&first, "after", b"{}"))
        .await
        .unwrap();
    assert_eq!(outcome, AddOutcome::Stored { sequence: 2 });
    let read = store.callbacks_after(&first.id, 0, 10).await.unwrap();
    assert_eq!(read.iter().map(|d| d.sequence).collect::<Vec<_>>(), [1, 2]);
    let second = slot(Duration::from_secs(600));
    store.create_slot(&second).await.unwrap();
    assert!(store.slot(&second.id).await.unwrap().is_some());
    store.close().await;
    backend.clean_up().await;
}

/// Two replicas storing into the same slots at once, each committing groups of callbacks: every
/// slot is numbered 1, 2, 3, ... without a gap or a number given twice, each delivery is stored
/// once, and no group waits on the other's for ever (their slot locks are taken in one order).
#[tokio::test]
async fn postgres_replicas_number_shared_slots_without_gaps() {
    let backend = Backend::new_postgres().await;
    let replicas = [backend.open().await, backend.open().await];
    let slots: Vec<Slot> = (0..3).map(|_| slot(Duration::from_secs(600))).collect();
    for slot in &slots {
        replicas[0].create_slot(slot).await.unwrap();
    }
    let adds = (0..240).map(|n| {
        let store = replicas[n % 2].clone();
        // Every delivery is sent twice, once to each replica.
        let slot = &slots[(n / 2) % 3];
        let mut callback = delivery(slot, &format!("k{}", n / 2), b"{\"success\":true}");
        callback.max_per_slot = 1000;
        let slot_id = slot.id.clone();
        tokio::spawn(async move { (slot_id, store.add_callback(callback).await.unwrap()) })
    });
    let outcomes = tokio::time::timeout(Duration::from_secs(60), futures::future::join_all(adds))
        .await
        .expect("the replicas' groups did not finish");
    let (mut stored, mut repeats) = (0, 0);
    for outcome in outcomes {
        match outcome.unwrap().1 {
            AddOutcome::Stored { .. } => stored += 1,
            AddOutcome::Duplicate { .. } => repeats += 1,
            other => panic!("expected stored or a repeat, got {other:?}"),
        }
    }
    assert_eq!((stored, repeats), (120, 120));
    let mut total = 0;
    for slot in &slots {
        let numbers: Vec<u64> = replicas[1]
            .callbacks_after(&slot.id, 0, 1000)
            .await
            .unwrap()
            .iter()
            .map(|delivery| delivery.sequence)
            .collect();
        assert_eq!(numbers, (1..=numbers.len() as u64).collect::<Vec<_>>());
        total += numbers.len();
    }
    assert_eq!(total, 120);
    for replica in &replicas {
        replica.close().await;
    }
    backend.clean_up().await;
}

#[test]
fn unsupported_store_urls_are_refused() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let err = runtime
        .block_on(store::open("mysql://localhost/x"))
        .err()
        .expect("mysql is not a store");
    assert!(err.to_string().contains("unsupported store"), "{err}");
}
