//! The relay's benchmark: starts the real `hookgate relay` (release build) on a SQLite file with
//! durable commits (WAL, each commit fsynced before its callers are answered) and measures, over
//! loopback on this machine:
//!
//! 1. callback to waiting poll: a long poll waits on a slot, a callback is sent, and the time
//!    from sending the callback to the poll's answer is taken, over many rounds (p50, p99);
//! 2. callback intake at 64 concurrent connections, against a trivial axum handler measured in
//!    the same run with the same client (the handler runs in a process of its own, as the relay
//!    does, so neither shares the client's runtime). The two take turns, in rounds of a few
//!    seconds each, so that a change in the machine's speed during the run (a shared virtual
//!    machine's speed drifts) falls on both alike; the rates are over all rounds, and so is the
//!    CPU time each process spent per request, which varies less between runs. As in use,
//!    callbacks go to slots created shortly before: the slots are created first, and the
//!    connections take them in the order they were created, ten callbacks each, within the
//!    relay's default limit per slot;
//! 3. the relay's resident memory (VmRSS) while it holds 10,000 long polls on 10,000 slots: on a
//!    relay just started, and on the relay of 1 and 2 after their runs.
//!
//! Run with `cargo run --release -p relay-bench`; it builds `hookgate` in release first when
//! `target/release/hookgate` is missing (`HOOKGATE_BIN` names another binary). The relay logs at
//! `warn` during the run, so logging costs are not measured.

// A report tool: its output is the point.
#![allow(clippy::print_stdout)]

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const RELAY_TOKEN: &str = "relay-bench-token-0123456789abcdef";
const LATENCY_ROUNDS: usize = 500;
const INTAKE_CONNECTIONS: usize = 64;
/// Rounds of intake: in each, the relay and then the trivial handler take callbacks.
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

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some("baseline-server") {
        let port: u16 = args.next().context("baseline-server PORT")?.parse()?;
        return baseline_server(port);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(bench())
}

/// The comparison: an axum handler that reads the body and answers 202 with a small JSON.
fn baseline_server(port: u16) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let app = axum::Router::new()
            .route(
                "/v1/callbacks/{id}",
                axum::routing::post(|_body: axum::body::Bytes| async {
                    (
                        axum::http::StatusCode::ACCEPTED,
                        axum::Json(json!({"slot": "x", "sequence": 1})),
                    )
                }),
            )
            .route("/healthz", axum::routing::get(|| async { "ok" }));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        axum::serve(listener, app).await?;
        Ok(())
    })
}

async fn bench() -> anyhow::Result<()> {
    let hookgate = hookgate_binary()?;
    let dir = std::env::temp_dir().join(format!("hookgate-relay-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let store = format!("sqlite:{}", dir.join("relay.sqlite").display());

    let (mut relay, relay_address) = start_relay(&hookgate, &store)?;
    let baseline_address = free_address()?;
    let mut baseline = Command::new(std::env::current_exe()?)
        .args(["baseline-server", &baseline_address.port().to_string()])
        .spawn()?;
    let mut fresh_relay = None;

    let result = async {
        let relay_url = format!("http://{relay_address}");
        let baseline_url = format!("http://{baseline_address}");
        wait_healthy(&relay_url).await?;
        wait_healthy(&baseline_url).await?;
        println!(
            "hookgate relay benchmark: {} ({} CPUs), relay on {store} (WAL, durable commits)",
            hookgate.display(),
            std::thread::available_parallelism().map_or(0, usize::from)
        );
        let latency = latency(&relay_url).await?;
        let intake = intake(&relay_url, relay.id(), &baseline_url, baseline.id()).await?;
        let mut held = memory(&relay_url, relay.id(), relay_address).await?;
        held.baseline_kib = baseline_memory(baseline.id(), baseline_address).await?;
        // The same on a relay that has done nothing else: what holding the polls costs, without
        // the heap left over from the intake run.
        let fresh_store = format!("sqlite:{}", dir.join("fresh.sqlite").display());
        let (fresh, fresh_address) = start_relay(&hookgate, &fresh_store)?;
        let fresh_pid = fresh.id();
        fresh_relay = Some(fresh);
        let fresh_url = format!("http://{fresh_address}");
        wait_healthy(&fresh_url).await?;
        let fresh_memory = memory(&fresh_url, fresh_pid, fresh_address).await?;
        report(&latency, &intake, &fresh_memory, &held);
        anyhow::Ok(())
    }
    .await;

    stop(&mut relay);
    stop(&mut baseline);
    if let Some(mut fresh) = fresh_relay {
        stop(&mut fresh);
    }
    let _ = std::fs::remove_dir_all(&dir);
    result
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
    max: Duration,
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
        max: samples[samples.len() - 1],
    })
}

// ---------------------------------------------------------------------------------------------

struct Intake {
    /// Callbacks per second answered 202, over all rounds.
    relay: f64,
    baseline: f64,
    /// CPU time (user and system) each process spent per request answered 202, over all rounds.
    relay_cpu: Duration,
    baseline_cpu: Duration,
    /// The ratio of the two in each round.
    round_ratios: Vec<f64>,
}

async fn intake(
    relay_url: &str,
    relay_pid: u32,
    baseline_url: &str,
    baseline_pid: u32,
) -> anyhow::Result<Intake> {
    let slots = create_slots(relay_url, INTAKE_SLOTS).await?;
    // The trivial handler gets the same requests: the same paths, slot tokens and bodies.
    let baseline_slots: Vec<_> = slots
        .iter()
        .map(|(url, token)| (url.replacen(relay_url, baseline_url, 1), token.clone()))
        .collect();
    let (relay_targets, baseline_targets) = (Targets::new(slots), Targets::new(baseline_slots));
    let (mut relay, mut baseline) = (Count::default(), Count::default());
    let mut round_ratios = Vec::new();
    for round in 0..INTAKE_ROUNDS {
        let relay_round = rate(&relay_targets, round, relay_pid).await?;
        let baseline_round = rate(&baseline_targets, round, baseline_pid).await?;
        round_ratios.push(relay_round.per_second() / baseline_round.per_second());
        relay.add(relay_round);
        baseline.add(baseline_round);
    }
    // Where the time goes: the relay's own view of a callback's duration.
    let client = reqwest::Client::new();
    let metrics = metrics_text(&client, relay_url).await?;
    let series = |name: &str| {
        series_value(
            &metrics,
            &format!("{name}{{route=\"/v1/callbacks/{{id}}\"}}"),
        )
        .unwrap_or(0.0)
    };
    let (sum, count) = (
        series("hookgate_relay_request_duration_seconds_sum"),
        series("hookgate_relay_request_duration_seconds_count"),
    );
    if count > 0.0 {
        println!(
            "  relay-side mean time per callback during intake: {:.2} ms over {count} callbacks",
            sum / count * 1000.0
        );
    }
    Ok(Intake {
        relay: relay.per_second(),
        baseline: baseline.per_second(),
        relay_cpu: relay.cpu_per_request(),
        baseline_cpu: baseline.cpu_per_request(),
        round_ratios,
    })
}

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
    idle_kib: u64,
    waiting_kib: u64,
    waiters: u64,
    /// The trivial axum handler holding as many open connections, each after one request.
    baseline_kib: u64,
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
    let idle_kib = rss_kib(pid)?;
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
        idle_kib,
        waiting_kib,
        waiters: waiters.min(still),
        baseline_kib: 0,
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

/// For scale: the trivial axum handler's resident memory with `WAITERS` open keep-alive
/// connections that have each been answered once (what hyper keeps per connection).
async fn baseline_memory(pid: u32, address: SocketAddr) -> anyhow::Result<u64> {
    let mut connections = Vec::with_capacity(WAITERS);
    for n in 0..WAITERS {
        connections.push(tokio::spawn(async move {
            let mut socket = tokio::net::TcpStream::connect(address).await?;
            socket
                .write_all(format!("GET /healthz HTTP/1.1\r\nhost: {address}\r\n\r\n").as_bytes())
                .await?;
            let mut answer = [0u8; 256];
            let read = socket.read(&mut answer).await?;
            anyhow::Ok((socket, read))
        }));
        if n % 500 == 499 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let mut open = Vec::with_capacity(WAITERS);
    for connection in connections {
        open.push(connection.await??);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let kib = rss_kib(pid)?;
    drop(open);
    Ok(kib)
}

// ---------------------------------------------------------------------------------------------

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

fn report(latency: &Latency, intake: &Intake, fresh: &Memory, after_intake: &Memory) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!();
    println!(
        "1. callback -> waiting poll, {LATENCY_ROUNDS} rounds: p50 {:.2} ms (target < 5 ms) {}, \
         p99 {:.2} ms (target < 20 ms) {}, max {:.2} ms",
        ms(latency.p50),
        verdict(latency.p50 < Duration::from_millis(5)),
        ms(latency.p99),
        verdict(latency.p99 < Duration::from_millis(20)),
        ms(latency.max),
    );
    let ratio = intake.relay / intake.baseline;
    let rounds: Vec<String> = intake
        .round_ratios
        .iter()
        .map(|ratio| format!("{:.0}%", ratio * 100.0))
        .collect();
    println!(
        "2. callback intake, {INTAKE_CONNECTIONS} connections, {INTAKE_ROUNDS} rounds of {} s each: \
         relay {:.0} req/s, trivial axum handler {:.0} req/s, ratio {:.0}% (target >= 50%) {} \
         (by round: {})",
        INTAKE_DURATION.as_secs(),
        intake.relay,
        intake.baseline,
        ratio * 100.0,
        verdict(ratio >= 0.5),
        rounds.join(", "),
    );
    println!(
        "   CPU time per request: relay {:.1} µs, trivial axum handler {:.1} µs",
        intake.relay_cpu.as_secs_f64() * 1e6,
        intake.baseline_cpu.as_secs_f64() * 1e6,
    );
    let mib = |kib: u64| kib as f64 / 1024.0;
    let held = |memory: &Memory| {
        format!(
            "{} waiting long polls, relay RSS {:.1} MiB = {:.1} MB (idle before: {:.1} MiB) \
             (target < 150 MB) {}",
            memory.waiters,
            mib(memory.waiting_kib),
            (memory.waiting_kib * 1024) as f64 / 1e6,
            mib(memory.idle_kib),
            verdict(
                memory.waiters >= WAITERS as u64 && memory.waiting_kib * 1024 < 150 * 1000 * 1000
            ),
        )
    };
    println!("3. a relay just started: {}", held(fresh));
    println!(
        "   the relay of 1 and 2, after their runs: {}",
        held(after_intake)
    );
    println!(
        "   for scale, the trivial axum handler with {WAITERS} open connections answered once: {:.1} MiB",
        mib(after_intake.baseline_kib),
    );
}
