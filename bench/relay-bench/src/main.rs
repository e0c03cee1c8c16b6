//! The relay's benchmark: starts the real `hookgate relay` (release build) on a SQLite file with
//! durable commits and on the machine's PostgreSQL, and measures over loopback, for each store:
//!
//! 1. callback to waiting poll: a long poll waits on a slot, a callback is sent, and the time
//!    from sending the callback to the poll's answer is taken, over many rounds (p50, p99);
//! 2. callback intake at 64 concurrent connections. As in use, callbacks go to slots created
//!    shortly before: the connections take the slots in the order they were created, ten
//!    callbacks each, within the relay's default limit per slot. Every relay measured (each
//!    store, and with `--before PATH`, another build of `hookgate` such as the last release, on
//!    each store too) takes its turn in each of the rounds of a few seconds, so that a change in
//!    the machine's speed during the run falls on all alike, the ratio of the stores included;
//!    the CPU time each process spent per callback is printed too;
//! 3. the resident memory (VmRSS) of a relay just started while it holds 10,000 long polls;
//! 4. durability: callbacks are sent at full speed, the relay is killed with SIGKILL, started
//!    again on the same store, and every callback that was answered 202 is looked for.
//!
//! Run with `cargo run --release -p relay-bench [-- --before PATH]`; it builds `hookgate` in
//! release first when `target/release/hookgate` is missing (`HOOKGATE_BIN` names another
//! binary). PostgreSQL is `HOOKGATE_BENCH_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/test`), a fresh schema per relay. The relay logs at `warn`
//! during the run, so logging costs are not measured.

// A report tool: its output is the point.
#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use sqlx::Connection as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const RELAY_TOKEN: &str = "relay-bench-token-0123456789abcdef";
const LATENCY_ROUNDS: usize = 500;
const INTAKE_CONNECTIONS: usize = 64;
/// Rounds of intake: in each, every relay measured takes callbacks in turn.
const INTAKE_ROUNDS: u32 = 4;
/// Requests before the count starts, in each round (connections open, caches warm).
const INTAKE_WARMUP: Duration = Duration::from_millis(500);
/// How long each counts in each round.
const INTAKE_DURATION: Duration = Duration::from_secs(2);
const WAITERS: usize = 10_000;
/// Callbacks each slot takes during the intake run (the relay's default limit is 100).
const CALLBACKS_PER_SLOT: usize = 10;
/// Slots created for the intake run: one pass over them takes 80,000 callbacks; the connections
/// then start over from the first (each slot stays below the limit of 100 in a run of fewer than
/// ten passes).
const INTAKE_SLOTS: usize = 8_000;
/// How long callbacks are sent before the relay is killed, in the durability run.
const KILL_AFTER: Duration = Duration::from_millis(1500);

fn main() -> anyhow::Result<()> {
    const USAGE: &str = "usage: relay-bench [--before PATH] [--only sqlite|postgres]";
    let mut before = std::env::var_os("HOOKGATE_BEFORE_BIN").map(PathBuf::from);
    let mut kinds = vec![StoreKind::Sqlite, StoreKind::Postgres];
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--before" => before = Some(args.next().context("--before PATH")?.into()),
            "--only" => {
                kinds = match args.next().as_deref() {
                    Some("sqlite") => vec![StoreKind::Sqlite],
                    Some("postgres") => vec![StoreKind::Postgres],
                    _ => bail!("--only takes sqlite or postgres; {USAGE}"),
                }
            }
            other => bail!("unknown argument {other:?}; {USAGE}"),
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(bench(before, &kinds))
}

/// A relay build under test.
struct Build {
    name: &'static str,
    path: PathBuf,
}

/// Where relays keep their data: fresh files in a directory, or fresh schemas on one server.
struct Stores {
    dir: PathBuf,
    postgres: String,
    schemas: Vec<String>,
    count: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum StoreKind {
    Sqlite,
    Postgres,
}

impl StoreKind {
    fn name(self) -> &'static str {
        match self {
            StoreKind::Sqlite => "SQLite",
            StoreKind::Postgres => "PostgreSQL",
        }
    }
}

impl Stores {
    /// A store URL nobody used yet.
    async fn fresh(&mut self, kind: StoreKind) -> anyhow::Result<String> {
        self.count += 1;
        match kind {
            StoreKind::Sqlite => Ok(format!(
                "sqlite:{}",
                self.dir
                    .join(format!("relay-{}.sqlite", self.count))
                    .display()
            )),
            StoreKind::Postgres => {
                let schema = format!("hg_bench_{}_{}", std::process::id(), self.count);
                let mut connection = sqlx::PgConnection::connect(&self.postgres)
                    .await
                    .with_context(|| format!("connecting to {}", self.postgres))?;
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(&mut connection)
                    .await?;
                self.schemas.push(schema.clone());
                Ok(format!(
                    "{}?options=-c%20search_path%3D{schema}",
                    self.postgres
                ))
            }
        }
    }

    async fn clean_up(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Ok(mut connection) = sqlx::PgConnection::connect(&self.postgres).await {
            for schema in self.schemas.drain(..) {
                let drop = format!("DROP SCHEMA {schema} CASCADE");
                let _ = sqlx::query(sqlx::AssertSqlSafe(drop))
                    .execute(&mut connection)
                    .await;
            }
        }
    }
}

/// A relay process, stopped when dropped.
struct Relay {
    child: Child,
    url: String,
    address: SocketAddr,
}

impl Relay {
    async fn start(build: &Build, store: &str) -> anyhow::Result<Self> {
        let (child, address) = start_relay(&build.path, store)?;
        let relay = Relay {
            child,
            url: format!("http://{address}"),
            address,
        };
        wait_healthy(&relay.url).await?;
        Ok(relay)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// What one build measured on one store kind.
#[derive(Default)]
struct Figures {
    latency: Option<Latency>,
    intake: Option<Count>,
    memory: Option<Memory>,
    durability: Option<Durability>,
}

async fn bench(before: Option<PathBuf>, kinds: &[StoreKind]) -> anyhow::Result<()> {
    let mut builds = vec![Build {
        name: "this build",
        path: hookgate_binary()?,
    }];
    if let Some(path) = before {
        builds.push(Build {
            name: "before",
            path,
        });
    }
    let dir = std::env::temp_dir().join(format!("hookgate-relay-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut stores = Stores {
        dir,
        postgres: std::env::var("HOOKGATE_BENCH_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned()),
        schemas: Vec::new(),
        count: 0,
    };
    println!(
        "hookgate relay benchmark ({} CPUs): {}",
        std::thread::available_parallelism().map_or(0, usize::from),
        builds
            .iter()
            .map(|b| format!("{} = {}", b.name, b.path.display()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let result = measure_all(&builds, kinds, &mut stores).await;
    stores.clean_up().await;
    let figures = result?;
    report(&builds, &figures);
    Ok(())
}

async fn measure_all(
    builds: &[Build],
    kinds: &[StoreKind],
    stores: &mut Stores,
) -> anyhow::Result<HashMap<(StoreKind, usize), Figures>> {
    let mut figures: HashMap<(StoreKind, usize), Figures> = HashMap::new();
    // Latency and intake: one relay per store kind and build, each on a store of its own. Every
    // relay takes its turn in each intake round, so that a change in the machine's speed during
    // the run falls on all of them alike, the stores' ratio included.
    let mut relays = Vec::new();
    for &kind in kinds {
        for (n, build) in builds.iter().enumerate() {
            let relay = Relay::start(build, &stores.fresh(kind).await?).await?;
            let latency = latency(&relay.url).await?;
            println!(
                "{} {}: callback -> waiting poll p50 {:.2} ms, p99 {:.2} ms",
                kind.name(),
                build.name,
                ms(latency.p50),
                ms(latency.p99)
            );
            figures.entry((kind, n)).or_default().latency = Some(latency);
            let targets = Targets::new(create_slots(&relay.url, INTAKE_SLOTS).await?);
            relays.push((kind, n, relay, targets, Count::default()));
        }
    }
    for round in 0..INTAKE_ROUNDS {
        let mut line = Vec::new();
        for (kind, n, relay, targets, total) in &mut relays {
            let count = rate(targets, round, relay.pid()).await?;
            line.push(format!(
                "{} {} {:.0}/s",
                kind.name(),
                builds[*n].name,
                count.per_second()
            ));
            total.add(count);
        }
        println!("intake round {}: {}", round + 1, line.join(", "));
    }
    for (kind, n, relay, _, total) in relays {
        figures.entry((kind, n)).or_default().intake = Some(total);
        drop(relay);
    }
    for &kind in kinds {
        // Memory: a relay just started on a fresh store, holding the polls.
        for (n, build) in builds.iter().enumerate() {
            let relay = Relay::start(build, &stores.fresh(kind).await?).await?;
            let held = memory(&relay.url, relay.pid(), relay.address).await?;
            println!(
                "{} {}: {} waiting long polls, RSS {:.1} MB",
                kind.name(),
                build.name,
                held.waiters,
                mb(held.waiting_kib)
            );
            figures.entry((kind, n)).or_default().memory = Some(held);
        }
        // Durability, of this build.
        let durability = durability(&builds[0], &stores.fresh(kind).await?).await?;
        println!(
            "{} {}: kill -9 during intake: {} answered 202, {} found after the restart, {} lost",
            kind.name(),
            builds[0].name,
            durability.acknowledged,
            durability.found,
            durability.lost
        );
        figures.entry((kind, 0)).or_default().durability = Some(durability);
    }
    Ok(figures)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mb(kib: u64) -> f64 {
    (kib * 1024) as f64 / 1e6
}

/// Starts `hookgate relay` on a free port with `store`, logging warnings only.
fn start_relay(hookgate: &Path, store: &str) -> anyhow::Result<(Child, SocketAddr)> {
    let address = free_address()?;
    let child = Command::new(hookgate)
        .args(["relay", "--listen", &address.to_string()])
        .args(["--store", store, "--relay-token", RELAY_TOKEN])
        .env("HOOKGATE_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", hookgate.display()))?;
    Ok((child, address))
}

fn hookgate_binary() -> anyhow::Result<PathBuf> {
    if let Ok(path) = std::env::var("HOOKGATE_BIN") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("the benchmark's directory")?;
    let path = dir.join("hookgate");
    if !path.exists() {
        println!("building hookgate (release) first ...");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = Command::new(cargo)
            .args(["build", "--release", "--bin", "hookgate"])
            .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
            .status()?;
        if !status.success() {
            bail!("cargo build --release --bin hookgate failed");
        }
    }
    Ok(path)
}

fn free_address() -> anyhow::Result<SocketAddr> {
    Ok(StdListener::bind("127.0.0.1:0")?.local_addr()?)
}

fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .stderr(Stdio::null())
        .status();
    for _ in 0..100 {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

async fn wait_healthy(url: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(response) = client.get(format!("{url}/healthz")).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{url} did not become healthy")
}

async fn create_slot(client: &reqwest::Client, relay_url: &str) -> anyhow::Result<Value> {
    let response = client
        .post(format!("{relay_url}/v1/slots"))
        .bearer_auth(RELAY_TOKEN)
        .json(&json!({"auth": "bearer", "deadline": 3600, "label": "bench"}))
        .send()
        .await?;
    if response.status() != reqwest::StatusCode::CREATED {
        bail!("creating a slot: {}", response.status());
    }
    Ok(response.json().await?)
}

fn field<'v>(value: &'v Value, name: &str) -> anyhow::Result<&'v str> {
    value[name]
        .as_str()
        .with_context(|| format!("no {name} in {value}"))
}

// ---------------------------------------------------------------------------------------------

struct Latency {
    p50: Duration,
    p99: Duration,
}

/// Each round, as the action does: a slot is created, a poll waits on it, then a callback is
/// sent; the time from sending the callback to the poll's answer is recorded.
async fn latency(relay_url: &str) -> anyhow::Result<Latency> {
    let poller = reqwest::Client::new();
    let sender = reqwest::Client::new();
    let mut samples = Vec::with_capacity(LATENCY_ROUNDS);
    for round in 0..LATENCY_ROUNDS + 20 {
        let slot = create_slot(&sender, relay_url).await?;
        let id = field(&slot, "id")?.to_owned();
        let token = field(&slot, "token")?.to_owned();
        let read_token = field(&slot, "readToken")?.to_owned();
        let callback_url = format!("{relay_url}/v1/callbacks/{id}");
        let poll = {
            let poller = poller.clone();
            let url = format!("{relay_url}/v1/slots/{id}?wait=30s");
            let read_token = read_token.clone();
            tokio::spawn(async move {
                let response = poller.get(url).bearer_auth(read_token).send().await?;
                let answer: Value = response.json().await?;
                anyhow::Ok((Instant::now(), answer))
            })
        };
        // Let the poll reach the relay and park.
        tokio::time::sleep(Duration::from_millis(15)).await;
        let sent = Instant::now();
        let response = sender
            .post(&callback_url)
            .bearer_auth(&token)
            .body(format!(r#"{{"success": true, "round": {round}}}"#))
            .send()
            .await?;
        if response.status() != reqwest::StatusCode::ACCEPTED {
            bail!("callback answered {}", response.status());
        }
        let (answered, answer) = poll.await??;
        if answer["callbacks"].as_array().map_or(0, Vec::len) != 1 {
            bail!("the poll did not get the callback: {answer}");
        }
        // The first rounds warm connections and caches.
        if round >= 20 {
            samples.push(answered.saturating_duration_since(sent));
        }
    }
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    Ok(Latency {
        p50: at(0.50),
        p99: at(0.99),
    })
}

// ---------------------------------------------------------------------------------------------

/// Callback targets (URL and token) and where the next connection takes up.
struct Targets {
    list: Vec<(String, String)>,
    next: AtomicUsize,
}

impl Targets {
    fn new(list: Vec<(String, String)>) -> Arc<Self> {
        Arc::new(Self {
            list,
            next: AtomicUsize::new(0),
        })
    }

    /// The next target, starting over after the last.
    fn take(&self) -> &(String, String) {
        &self.list[self.next.fetch_add(1, Ordering::Relaxed) % self.list.len()]
    }
}

/// Requests answered 202 in a counted time, and the server's CPU time over a whole round.
#[derive(Default)]
struct Count {
    accepted: u64,
    elapsed: Duration,
    /// Every request answered 202 in the round, warm-up included.
    answered: u64,
    cpu: Duration,
}

impl Count {
    fn add(&mut self, other: Self) {
        self.accepted += other.accepted;
        self.elapsed += other.elapsed;
        self.answered += other.answered;
        self.cpu += other.cpu;
    }

    fn per_second(&self) -> f64 {
        self.accepted as f64 / self.elapsed.as_secs_f64()
    }

    fn cpu_per_request(&self) -> Duration {
        self.cpu / u32::try_from(self.answered.max(1)).unwrap_or(u32::MAX)
    }
}

/// The CPU time (user and system, all threads) process `pid` has used so far.
fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("no command name in /proc/PID/stat")?
        .1
        .split_whitespace()
        .collect();
    // utime and stime: fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: u64 = fields
        .get(11..13)
        .context("no utime and stime in /proc/PID/stat")?
        .iter()
        .map(|field| field.parse::<u64>())
        .sum::<Result<_, _>>()?;
    // Linux reports them in USER_HZ, 100 per second on every platform it runs on.
    Ok(Duration::from_millis(ticks * 10))
}

/// Creates `count` slots, `INTAKE_CONNECTIONS` at a time, and returns their callback URLs and
/// tokens in the order the relay created them.
async fn create_slots(relay_url: &str, count: usize) -> anyhow::Result<Vec<(String, String)>> {
    let client = reqwest::Client::new();
    let created = Arc::new(std::sync::Mutex::new(Vec::with_capacity(count)));
    let next = Arc::new(AtomicU64::new(0));
    let creators: Vec<_> = (0..INTAKE_CONNECTIONS)
        .map(|_| {
            let (client, created, next) = (client.clone(), created.clone(), next.clone());
            let relay_url = relay_url.to_owned();
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < count as u64 {
                    let slot = create_slot(&client, &relay_url).await?;
                    let target = (
                        format!("{relay_url}/v1/callbacks/{}", field(&slot, "id")?),
                        field(&slot, "token")?.to_owned(),
                    );
                    created
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(target);
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for creator in creators {
        creator.await??;
    }
    let created = std::mem::take(
        &mut *created
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    Ok(created)
}

/// Requests answered 202 by `INTAKE_CONNECTIONS` workers in `INTAKE_DURATION`, after
/// `INTAKE_WARMUP`. The workers take the targets in order, going on where the last round stopped;
/// each sends `CALLBACKS_PER_SLOT` callbacks to its target before it takes the next. Every body
/// is distinct (by round, worker and number), so none is a repeat.
async fn rate(targets: &Arc<Targets>, round: u32, server_pid: u32) -> anyhow::Result<Count> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(INTAKE_CONNECTIONS)
        .build()?;
    let counting = Arc::new(AtomicBool::new(false));
    let running = Arc::new(AtomicBool::new(true));
    let accepted = Arc::new(AtomicU64::new(0));
    let answered = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let cpu_before = cpu_time(server_pid)?;
    let workers: Vec<_> = (0..INTAKE_CONNECTIONS)
        .map(|worker| {
            let (client, targets) = (client.clone(), targets.clone());
            let (counting, running) = (counting.clone(), running.clone());
            let (accepted, answered, failed) = (accepted.clone(), answered.clone(), failed.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                'slots: while running.load(Ordering::Relaxed) {
                    let (url, token) = targets.take();
                    for _ in 0..CALLBACKS_PER_SLOT {
                        if !running.load(Ordering::Relaxed) {
                            break 'slots;
                        }
                        n += 1;
                        let body = format!(
                            r#"{{"success": true, "round": {round}, "worker": {worker}, "n": {n}}}"#
                        );
                        let ok = match client.post(url).bearer_auth(token).body(body).send().await {
                            Ok(response) => response.status() == reqwest::StatusCode::ACCEPTED,
                            Err(_) => false,
                        };
                        if ok {
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                        if counting.load(Ordering::Relaxed) {
                            if ok {
                                accepted.fetch_add(1, Ordering::Relaxed);
                            } else {
                                failed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(INTAKE_WARMUP).await;
    counting.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(INTAKE_DURATION).await;
    counting.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed();
    running.store(false, Ordering::Relaxed);
    for worker in workers {
        worker.await?;
    }
    let cpu = cpu_time(server_pid)?.saturating_sub(cpu_before);
    let failed = failed.load(Ordering::Relaxed);
    if failed > 0 {
        println!("  note: {failed} requests were not answered 202");
    }
    Ok(Count {
        accepted: accepted.load(Ordering::Relaxed),
        elapsed,
        answered: answered.load(Ordering::Relaxed),
        cpu,
    })
}

// ---------------------------------------------------------------------------------------------

struct Memory {
    waiting_kib: u64,
    waiters: u64,
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .context("no VmRSS")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("VmRSS value")?
        .parse()?)
}

async fn waiters_now(client: &reqwest::Client, relay_url: &str) -> anyhow::Result<u64> {
    let metrics = metrics_text(client, relay_url).await?;
    let waiters = series_value(&metrics, "hookgate_relay_waiters").context("no waiters gauge")?;
    Ok(waiters as u64)
}

/// The relay's `/metrics` text.
async fn metrics_text(client: &reqwest::Client, relay_url: &str) -> anyhow::Result<String> {
    Ok(client
        .get(format!("{relay_url}/metrics"))
        .send()
        .await?
        .text()
        .await?)
}

/// The value of one series, named with its labels as the relay prints them, in a metrics text.
fn series_value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// Opens `WAITERS` long polls as the action does (one connection each, kept alive: the slot is
/// created on it, then polled), waits until the relay counts them all, and reads the relay's
/// resident memory. Plain sockets keep the client light.
async fn memory(relay_url: &str, pid: u32, address: SocketAddr) -> anyhow::Result<Memory> {
    let client = reqwest::Client::new();
    // At most this many slots are being created at once.
    let creating = Arc::new(tokio::sync::Semaphore::new(64));
    let mut polls = Vec::with_capacity(WAITERS);
    for n in 0..WAITERS {
        let creating = creating.clone();
        polls.push(tokio::spawn(async move {
            let permit = creating.acquire_owned().await?;
            let mut socket = tokio::net::TcpStream::connect(address).await?;
            let body = r#"{"auth": "bearer", "deadline": 3600, "label": "bench"}"#;
            let request = format!(
                "POST /v1/slots HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {RELAY_TOKEN}\r\n\
                 content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            socket.write_all(request.as_bytes()).await?;
            let slot: Value = serde_json::from_slice(&read_answer(&mut socket).await?)?;
            drop(permit);
            let request = format!(
                "GET /v1/slots/{}?wait=60s HTTP/1.1\r\nhost: {address}\r\n\
                 authorization: Bearer {}\r\n\r\n",
                field(&slot, "id")?,
                field(&slot, "readToken")?
            );
            socket.write_all(request.as_bytes()).await?;
            read_answer(&mut socket).await
        }));
        // Do not flood the listen backlog.
        if n % 500 == 499 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let mut waiters = 0;
    for _ in 0..300 {
        waiters = waiters_now(&client, relay_url).await?;
        if waiters >= WAITERS as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let allocations settle, then read.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let waiting_kib = rss_kib(pid)?;
    let still = waiters_now(&client, relay_url).await?;
    // End the polls: each client hangs up, and the relay drops its waiter.
    for poll in &polls {
        poll.abort();
    }
    Ok(Memory {
        waiting_kib,
        waiters: waiters.min(still),
    })
}

/// Reads one HTTP/1.1 answer with a `content-length` from `socket`, and returns its body.
async fn read_answer(socket: &mut tokio::net::TcpStream) -> anyhow::Result<Vec<u8>> {
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&received[..end]).to_ascii_lowercase();
            if !head.starts_with("http/1.1 2") {
                bail!("the relay answered {}", head.lines().next().unwrap_or(""));
            }
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .context("no content-length")?
                .trim()
                .parse()?;
            let body_start = end + 4;
            while received.len() < body_start + length {
                let read = socket.read(&mut chunk).await?;
                if read == 0 {
                    bail!("the relay closed the connection mid-answer");
                }
                received.extend_from_slice(&chunk[..read]);
            }
            return Ok(received[body_start..body_start + length].to_vec());
        }
        let read = socket.read(&mut chunk).await?;
        if read == 0 {
            bail!("the relay closed the connection");
        }
        received.extend_from_slice(&chunk[..read]);
    }
}

// ---------------------------------------------------------------------------------------------

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

/// What a relay killed with SIGKILL during intake kept.
struct Durability {
    acknowledged: u64,
    found: u64,
    lost: u64,
}

/// Sends callbacks at full speed to slots of a fresh relay on `store`, kills the relay with
/// SIGKILL while they arrive, starts it again on the same store and reads every slot back: each
/// callback answered 202 must be there, with the body it was sent with.
async fn durability(build: &Build, store: &str) -> anyhow::Result<Durability> {
    let mut relay = Relay::start(build, store).await?;
    let slots = create_slots(&relay.url, 500).await?;
    let client = reqwest::Client::new();
    let acknowledged = Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
    let running = Arc::new(AtomicBool::new(true));
    let slots = Arc::new(slots);
    let senders: Vec<_> = (0..INTAKE_CONNECTIONS)
        .map(|worker| {
            let (client, acknowledged, running, slots) = (
                client.clone(),
                acknowledged.clone(),
                running.clone(),
                slots.clone(),
            );
            tokio::spawn(async move {
                let mut n = 0usize;
                while running.load(Ordering::Relaxed) {
                    let (url, token) = &slots[(worker + n * INTAKE_CONNECTIONS) % slots.len()];
                    n += 1;
                    let body = format!(r#"{{"success": true, "worker": {worker}, "n": {n}}}"#);
                    let sent = client
                        .post(url)
                        .bearer_auth(token)
                        .body(body.clone())
                        .timeout(Duration::from_secs(5))
                        .send()
                        .await;
                    match sent {
                        Ok(response) if response.status() == reqwest::StatusCode::ACCEPTED => {
                            acknowledged
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .push((url.clone(), body));
                        }
                        // Refused by the dying relay, or the connection cut: not acknowledged.
                        _ => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(KILL_AFTER).await;
    // `Child::kill` is SIGKILL: no shutdown code runs.
    relay.child.kill()?;
    relay.child.wait()?;
    running.store(false, Ordering::Relaxed);
    for sender in senders {
        sender.await?;
    }
    drop(relay);
    let acknowledged = std::mem::take(
        &mut *acknowledged
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    let restarted = Relay::start(build, store).await?;
    let mut stored: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
    for (url, _) in slots.iter() {
        let id = url.rsplit('/').next().context("a slot id")?;
        let mut after = 0;
        loop {
            let answer: Value = client
                .get(format!("{}/v1/slots/{id}?after={after}", restarted.url))
                .bearer_auth(RELAY_TOKEN)
                .send()
                .await?
                .json()
                .await?;
            let callbacks = answer["callbacks"].as_array().cloned().unwrap_or_default();
            if callbacks.is_empty() {
                break;
            }
            for callback in &callbacks {
                after = callback["sequence"].as_u64().context("a sequence")?;
                let body = base64_decode(field(callback, "bodyBase64")?)?;
                stored.entry(url.clone()).or_default().push(body);
            }
        }
    }
    let found = acknowledged
        .iter()
        .filter(|(url, body)| {
            stored
                .get(url)
                .is_some_and(|bodies| bodies.iter().any(|b| b == body.as_bytes()))
        })
        .count() as u64;
    let acknowledged = acknowledged.len() as u64;
    Ok(Durability {
        acknowledged,
        found,
        lost: acknowledged - found,
    })
}

fn base64_decode(text: &str) -> anyhow::Result<Vec<u8>> {
    use base64::Engine as _;
    Ok(base64::engine::general_purpose::STANDARD.decode(text)?)
}

fn report(builds: &[Build], figures: &HashMap<(StoreKind, usize), Figures>) {
    println!();
    println!(
        "| store | build | p50 / p99 callback -> poll | intake (64 connections) | CPU per callback | RSS, 10,000 polls | kill -9: answered 202 / lost |"
    );
    println!("|---|---|---|---|---|---|---|");
    for kind in [StoreKind::Sqlite, StoreKind::Postgres] {
        for (n, build) in builds.iter().enumerate() {
            let Some(f) = figures.get(&(kind, n)) else {
                continue;
            };
            let latency = f.latency.as_ref().map_or("-".to_owned(), |l| {
                format!("{:.2} / {:.2} ms", ms(l.p50), ms(l.p99))
            });
            let (intake, cpu) = f
                .intake
                .as_ref()
                .map_or(("-".to_owned(), "-".to_owned()), |c| {
                    (
                        format!("{:.0}/s", c.per_second()),
                        format!("{:.1} µs", c.cpu_per_request().as_secs_f64() * 1e6),
                    )
                });
            let memory = f
                .memory
                .as_ref()
                .map_or("-".to_owned(), |m| format!("{:.1} MB", mb(m.waiting_kib)));
            let durability = f.durability.as_ref().map_or("-".to_owned(), |d| {
                format!("{} / {}", d.acknowledged, d.lost)
            });
            println!(
                "| {} | {} | {latency} | {intake} | {cpu} | {memory} | {durability} |",
                kind.name(),
                build.name
            );
        }
    }
    println!();
    let this = |kind| figures.get(&(kind, 0));
    for kind in [StoreKind::Sqlite, StoreKind::Postgres] {
        if let Some(f) = this(kind) {
            if let Some(l) = &f.latency {
                println!(
                    "{}: p50 {:.2} ms (goal < 5 ms) {}, p99 {:.2} ms (goal < 20 ms) {}",
                    kind.name(),
                    ms(l.p50),
                    verdict(l.p50 < Duration::from_millis(5)),
                    ms(l.p99),
                    verdict(l.p99 < Duration::from_millis(20))
                );
            }
            if let Some(m) = &f.memory {
                println!(
                    "{}: {} polls held in {:.1} MB (goal <= 150 MB) {}",
                    kind.name(),
                    m.waiters,
                    mb(m.waiting_kib),
                    verdict(m.waiters >= WAITERS as u64 && mb(m.waiting_kib) <= 150.0)
                );
            }
            if let Some(d) = &f.durability {
                println!(
                    "{}: {} callbacks answered 202 before kill -9, {} lost (goal 0) {}",
                    kind.name(),
                    d.acknowledged,
                    d.lost,
                    verdict(d.lost == 0 && d.acknowledged > 0)
                );
            }
        }
    }
    let rate = |kind, n| {
        figures
            .get(&(kind, n))
            .and_then(|f| f.intake.as_ref())
            .map(Count::per_second)
    };
    if let (Some(sqlite), Some(before)) = (rate(StoreKind::Sqlite, 0), rate(StoreKind::Sqlite, 1)) {
        println!(
            "SQLite intake: {sqlite:.0}/s against {before:.0}/s before = {:.0}% (goal >= 100%) {}",
            sqlite / before * 100.0,
            verdict(sqlite >= before)
        );
    }
    if let (Some(postgres), Some(sqlite)) =
        (rate(StoreKind::Postgres, 0), rate(StoreKind::Sqlite, 0))
    {
        println!(
            "PostgreSQL intake: {postgres:.0}/s against SQLite's {sqlite:.0}/s = {:.0}% (goal >= 50%) {}",
            postgres / sqlite * 100.0,
            verdict(postgres >= sqlite / 2.0)
        );
    }
}
