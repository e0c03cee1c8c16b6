//! The relay's HTTP service: routes, handlers and the serve loop with graceful shutdown.
//!
//! - `POST /v1/slots` (a relay token or an allowed GitHub Actions OIDC token): opens a slot and
//!   answers its id, callback URL, deadline, the callback token (bearer slots) and a read token.
//! - `POST /v1/callbacks/{id}` and `.../{id}/callback`: takes a callback, checks it in this order
//!   (404 unknown slot, 410 past the deadline, 401 credentials, 413 size, 408 a body too slow,
//!   400 body), stores the raw body and every header but `Authorization` durably, then answers
//!   202. A repeat of a
//!   stored delivery is answered exactly as the first time.
//! - `GET /v1/slots/{id}?after=N&wait=30s` (the slot's read token, or a relay token): the
//!   callbacks after sequence N, at once if there are any, else when one arrives or the wait ends.
//! - `/healthz`, `/metrics`.
//!
//! [`serve_with`] adds an [`Extension`]'s routes and metrics to these, given a [`LocalSlots`]
//! handle that opens slots and waits on them in-process (the GitHub App's gates use it).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::task::AtomicWaker;
use hookgate_auth::{Scheme, SlotTokens, bearer_matches, bearer_token};
use hookgate_protocol::{
    Accepted, CreateSlot, Deadline, SlotCallbacks, SlotCreated, Verdict, VerdictError,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{RelayConfig, redact_url};
use crate::error::ApiError;
use crate::metrics::{CallbackOutcome, Metrics};
use crate::oidc::OidcVerifier;
use crate::slot_cache::{SlotCache, SlotTerms};
use crate::store::{
    self, AddOutcome, CallbackAuth, NewCallback, Slot, SlotId, SlotStore, StoreError, WaitingStore,
};

/// The name the slot-token key is kept under in the store.
const SIGNING_KEY_NAME: &str = "slot-tokens";
/// The most callbacks one long poll answers with.
const MAX_CALLBACKS_PER_ANSWER: u32 = 100;
/// Headers never stored: they carry the caller's credentials.
const UNSTORED_HEADERS: [&str; 2] = ["authorization", "proxy-authorization"];
/// How long a request's whole body may take to arrive once its handler reads it. Bodies are at
/// most a few dozen KiB, so this is generous; a body sent a byte at a time, or chunked without an
/// end, is answered 408 instead of holding its connection for as long as the sender likes.
const BODY_DEADLINE: Duration = Duration::from_secs(10);
/// The largest slot request read (an `auth`, a deadline and a label of at most 200 bytes).
const MAX_SLOT_REQUEST: usize = 4096;

/// Why the relay could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The store could not be opened or used at start-up.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The signing key is unusable.
    #[error("the slot-token signing key is unusable: {0}")]
    SigningKey(#[from] hookgate_auth::TokenKeyError),
    /// The listener failed.
    #[error("serving HTTP: {0}")]
    Serve(#[source] std::io::Error),
    /// The listener has no local address.
    #[error("reading the listener's address: {0}")]
    Address(#[source] std::io::Error),
}

/// What every handler shares.
struct Relay {
    config: RelayConfig,
    public_url: String,
    store: WaitingStore,
    slots: SlotCache,
    tokens: SlotTokens,
    oidc: Option<OidcVerifier>,
    metrics: Metrics,
    /// An extension's metrics, appended to the relay's own.
    extra_metrics: std::sync::OnceLock<Arc<dyn Fn() -> String + Send + Sync>>,
    shutdown: CancellationToken,
}

type Shared = Arc<Relay>;

/// Opens the configured store and serves on `listener` until `shutdown` completes.
pub async fn run(
    config: RelayConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RelayError> {
    tracing::info!(store = %redact_url(&config.store), "opening the store");
    let store = store::open(&config.store).await?;
    serve(config, store, listener, shutdown).await
}

/// What a relay serves besides its own routes.
pub struct Extension {
    /// More routes (they must not overlap the relay's).
    pub router: Router,
    /// More metrics, in Prometheus' text format, appended to `/metrics`.
    pub metrics: Option<Arc<dyn Fn() -> String + Send + Sync>>,
    /// Runs until the relay stops; the store is closed only after it has ended.
    pub task: Option<tokio::task::JoinHandle<()>>,
}

/// Why an in-process slot call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocalError {
    /// The slot does not exist (never did, or removed by retention).
    #[error("no such slot")]
    NoSlot,
    /// The request was refused (a bad deadline or label).
    #[error("{0}")]
    Refused(String),
    /// The store failed; it may pass.
    #[error("{0}")]
    Unavailable(String),
}

impl From<ApiError> for LocalError {
    fn from(err: ApiError) -> Self {
        if err.status.is_client_error() {
            LocalError::Refused(err.detail)
        } else {
            LocalError::Unavailable(err.detail)
        }
    }
}

/// The slots of a running relay, in-process: opened as `POST /v1/slots` opens them, waited on
/// as `GET /v1/slots/{id}` waits, without HTTP.
#[derive(Clone)]
pub struct LocalSlots {
    relay: Shared,
}

impl LocalSlots {
    /// Opens a slot.
    pub async fn open(&self, request: CreateSlot) -> Result<SlotCreated, LocalError> {
        Ok(open_slot(&self.relay, request).await?)
    }

    /// The callbacks of `slot` after sequence `after`, waiting up to `wait` for the first.
    pub async fn wait(
        &self,
        slot: &SlotId,
        after: u64,
        wait: Duration,
    ) -> Result<Vec<hookgate_protocol::Delivery>, LocalError> {
        let relay = &self.relay;
        find_slot(relay, slot).await?.ok_or(LocalError::NoSlot)?;
        relay
            .store
            .wait_for_callbacks(
                slot,
                after,
                MAX_CALLBACKS_PER_ANSWER,
                tokio::time::Instant::now() + wait,
                relay.shutdown.cancelled(),
                || relay.metrics.waiting(),
            )
            .await
            .map_err(|err| LocalError::Unavailable(err.to_string()))
    }

    /// The URL the outside world reaches the relay at.
    pub fn public_url(&self) -> &str {
        &self.relay.public_url
    }

    /// Cancelled when the relay begins to stop.
    pub fn stopping(&self) -> CancellationToken {
        self.relay.shutdown.clone()
    }
}

/// Serves with an open store on `listener` until `shutdown` completes, then answers the waiting
/// long polls, lets requests in flight finish (up to the configured timeout) and closes the store.
pub async fn serve(
    config: RelayConfig,
    store: Arc<dyn SlotStore>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RelayError> {
    serve_with(config, store, listener, shutdown, |_| Extension {
        router: Router::new(),
        metrics: None,
        task: None,
    })
    .await
}

/// Like [`serve`], with the routes, metrics and task of the [`Extension`] that `extend` makes
/// from the relay's [`LocalSlots`].
pub async fn serve_with(
    config: RelayConfig,
    store: Arc<dyn SlotStore>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    extend: impl FnOnce(LocalSlots) -> Extension,
) -> Result<(), RelayError> {
    let address = listener.local_addr().map_err(RelayError::Address)?;
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{address}"))
        .trim_end_matches('/')
        .to_owned();
    let key = match &config.signing_key {
        Some(key) => key.clone(),
        None => {
            store
                .secret_or_insert(SIGNING_KEY_NAME, SlotTokens::generate_key().to_vec())
                .await?
        }
    };
    let tokens = SlotTokens::new(&key)?.with_leeway(Duration::from_secs(5));
    let stop = CancellationToken::new();
    let relay = Arc::new(Relay {
        oidc: config.oidc.clone().map(OidcVerifier::new),
        public_url,
        store: WaitingStore::new(store.clone(), stop.child_token()),
        slots: SlotCache::new(config.retention),
        tokens,
        metrics: Metrics::default(),
        extra_metrics: std::sync::OnceLock::new(),
        shutdown: stop.clone(),
        config,
    });
    tokio::spawn(remove_expired_slots(relay.clone()));

    let extension = extend(LocalSlots {
        relay: relay.clone(),
    });
    if let Some(render) = extension.metrics {
        let _ = relay.extra_metrics.set(render);
    }
    tracing::info!(%address, public_url = %relay.public_url, "relay listening");
    let app = router(relay.clone()).merge(extension.router);
    let drain_limit = relay.config.shutdown_timeout;
    let stopping = stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = shutdown => {},
            () = stopping.cancelled() => {},
        }
        tracing::info!("shutting down: answering waiters, finishing requests in flight");
        stopping.cancel();
    });
    let result = accept_loop(listener, app, &relay, stop, drain_limit).await;
    if let Some(task) = extension.task {
        let _ = tokio::time::timeout(drain_limit, task).await;
    }
    store.close().await;
    tracing::info!("relay stopped");
    result
}

/// Serves HTTP/1.1 connections until `stop`, then lets each connection finish its request in
/// flight and close, for at most `drain_limit`.
///
/// The connections are set up here rather than by `axum::serve` to allow half-closed connections:
/// hyper then does not read from a connection while its request is in flight. Otherwise it
/// allocates a fresh 8 KiB read buffer for every waiting long poll (the first still holds the
/// request's headers), which made up a third of the memory a waiting poll costs. The price: a
/// client that hangs up during a long poll is noticed when the poll is answered, not before.
async fn accept_loop(
    listener: TcpListener,
    app: Router,
    relay: &Shared,
    stop: CancellationToken,
    drain_limit: Duration,
) -> Result<(), RelayError> {
    let mut connections = tokio::task::JoinSet::new();
    let closing = Arc::new(StopSignal::default());
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(error = %err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let service = measured(app.clone(), relay.clone());
        let stopping = closing.listen();
        connections.spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .half_close(true)
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = stopping.stopped() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(err) = result {
                tracing::debug!(error = %err, "connection ended with an error");
            }
        });
        // Reap finished connections so the set holds only live ones.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    closing.stop();
    let drained = tokio::time::timeout(drain_limit, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            ?drain_limit,
            "requests still in flight at the shutdown timeout"
        );
        connections.abort_all();
    }
    Ok(())
}

/// Tells every open connection that the relay is stopping. A connection polls its listener each
/// time it is polled, which costs a few atomic operations; a shared cancellation token would take
/// a lock shared by all connections on every poll of each.
#[derive(Default)]
struct StopSignal {
    stopped: AtomicBool,
    next_id: AtomicU64,
    listeners: Mutex<HashMap<u64, Arc<AtomicWaker>>>,
}

impl StopSignal {
    /// Wakes every listener, and makes later ones stopped from the start.
    fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        // Woken outside the lock, which closing connections take to leave.
        let wakers: Vec<Arc<AtomicWaker>> = self
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        for waker in wakers {
            waker.wake();
        }
    }

    fn listen(self: &Arc<Self>) -> StopListener {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let waker = Arc::new(AtomicWaker::new());
        self.listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, waker.clone());
        StopListener {
            signal: self.clone(),
            id,
            waker,
        }
    }
}

/// One connection's view of the [`StopSignal`]; leaves it when dropped.
struct StopListener {
    signal: Arc<StopSignal>,
    id: u64,
    waker: Arc<AtomicWaker>,
}

impl StopListener {
    /// Completes once the signal has stopped.
    fn stopped(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(|cx| {
            // Registered before the flag is read: a stop in between still wakes this task.
            self.waker.register(cx.waker());
            if self.signal.stopped.load(Ordering::SeqCst) {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
    }
}

impl Drop for StopListener {
    fn drop(&mut self) {
        self.signal
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

fn router(relay: Shared) -> Router {
    Router::new()
        .route("/v1/slots", post(create_slot))
        .route("/v1/slots/{id}", get(read_slot))
        .route("/v1/callbacks/{id}", post(take_callback))
        .route("/v1/callbacks/{id}/callback", post(take_callback))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(relay)
}

/// The router as a connection's service, recording each request's latency by route.
///
/// Measured here rather than in a router middleware: hyper keeps this future inside the
/// connection's own allocation, where a middleware would add a boxed future to every request,
/// which a waiting long poll holds for as long as it waits.
fn measured(
    app: Router,
    relay: Shared,
) -> impl hyper::service::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<axum::response::Response, std::convert::Infallible>> + Send,
> + Clone {
    let app = hyper_util::service::TowerToHyperService::new(app);
    hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        let route = route_of(request.uri().path());
        let method = request.method().clone();
        let started = Instant::now();
        let answer = hyper::service::Service::call(&app, request);
        let relay = relay.clone();
        async move {
            let response = answer.await?;
            let elapsed = started.elapsed();
            relay.metrics.request(route, elapsed);
            tracing::debug!(%method, route, status = response.status().as_u16(), ?elapsed, "request");
            Ok(response)
        }
    })
}

/// The route a path takes, as the router names it (the label of the latency histogram).
fn route_of(path: &str) -> &'static str {
    let slot_id = |rest: &str| !rest.is_empty() && !rest.contains('/');
    match path {
        "/v1/slots" => "/v1/slots",
        "/healthz" => "/healthz",
        "/metrics" => "/metrics",
        "/github/webhook" => "/github/webhook",
        _ => {
            if path.strip_prefix("/v1/slots/").is_some_and(slot_id) {
                "/v1/slots/{id}"
            } else if path.strip_prefix("/v1/callbacks/").is_some_and(slot_id) {
                "/v1/callbacks/{id}"
            } else if path
                .strip_prefix("/v1/callbacks/")
                .and_then(|rest| rest.strip_suffix("/callback"))
                .is_some_and(slot_id)
            {
                "/v1/callbacks/{id}/callback"
            } else {
                "unmatched"
            }
        }
    }
}

/// Removes slots whose deadline is more than the retention period ago, now and then.
async fn remove_expired_slots(relay: Shared) {
    let every =
        (relay.config.retention / 4).clamp(Duration::from_secs(1), Duration::from_secs(300));
    loop {
        tokio::select! {
            () = relay.shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {},
        }
        let cutoff = SystemTime::now()
            .checked_sub(relay.config.retention)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        match relay.store.backend().remove_slots_before(cutoff).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "removed expired slots"),
            Err(err) => tracing::warn!(error = %err, "removing expired slots failed"),
        }
    }
}

async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn metrics(State(relay): State<Shared>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        match relay.extra_metrics.get() {
            Some(extra) => relay.metrics.render() + &extra(),
            None => relay.metrics.render(),
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Creating slots

/// The request's `deadline` read alone, when there is one: tells a bad deadline from other
/// mistakes in a refused request.
fn unreadable_deadline(body: &[u8]) -> Option<Result<Deadline, serde_json::Error>> {
    let request: serde_json::Value = serde_json::from_slice(body).ok()?;
    let deadline = request.get("deadline")?;
    Some(Deadline::deserialize(deadline))
}

/// Who is creating a slot, for the logs.
enum Creator {
    RelayToken,
    Actions(String),
}

/// The `Authorization` header's bearer token, and whether it is one of the relay tokens.
fn presented_token<'h>(
    relay: &Relay,
    headers: &'h HeaderMap,
    missing: &'static str,
) -> Result<(&'h str, bool), ApiError> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    let token = authorization
        .and_then(bearer_token)
        .ok_or_else(|| ApiError::unauthorized(missing))?;
    // Check every relay token, so timing does not tell which one (if any) matched.
    let mut matched = false;
    for expected in &relay.config.relay_tokens {
        matched |= bearer_matches(authorization, expected);
    }
    Ok((token, matched))
}

async fn authorize_creator(relay: &Relay, headers: &HeaderMap) -> Result<Creator, ApiError> {
    let (token, is_relay_token) = presented_token(
        relay,
        headers,
        "send a relay token or a GitHub Actions OIDC token as `Authorization: Bearer ...`",
    )?;
    if is_relay_token {
        return Ok(Creator::RelayToken);
    }
    // A relay token is opaque; a JWT has two dots.
    match &relay.oidc {
        Some(oidc) if token.bytes().filter(|byte| *byte == b'.').count() == 2 => {
            match oidc.verify(token).await {
                Ok(job) => Ok(Creator::Actions(job.repository)),
                Err(err @ crate::oidc::OidcError::NotAllowed { .. }) => {
                    Err(ApiError::forbidden(err.to_string()))
                }
                Err(err @ crate::oidc::OidcError::Jwks(_)) => {
                    tracing::warn!(error = %err, "cannot check an OIDC token");
                    Err(ApiError::oidc_keys_unavailable())
                }
                Err(err) => Err(ApiError::unauthorized(err.to_string())),
            }
        }
        _ => Err(ApiError::unauthorized(
            "the token is not a valid relay token",
        )),
    }
}

async fn create_slot(
    State(relay): State<Shared>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<SlotCreated>), ApiError> {
    let creator = authorize_creator(&relay, &headers).await?;
    let body = read_body(body, &headers, MAX_SLOT_REQUEST).await?;
    let request: CreateSlot = serde_json::from_slice(&body).map_err(|err| {
        if let Some(Err(why)) = unreadable_deadline(&body) {
            return ApiError::bad_request(
                "invalid_deadline",
                format!("{why} (e.g. 2030-01-01T12:00:00Z, or seconds from now)"),
            );
        }
        ApiError::bad_request(
            "invalid_slot_request",
            format!(
                "expected {{\"auth\": \"bearer\"|\"hmac-github\"|\"hmac-standard\", \"deadline\": RFC 3339 or seconds, \"label\": text}}: {err}"
            ),
        )
    })?;
    let label = request.label.clone();
    let created = open_slot(&relay, request).await?;
    match &creator {
        Creator::RelayToken => {
            tracing::info!(slot = %created.id, %label, auth = created.auth.as_str(), "slot created with a relay token");
        }
        Creator::Actions(repository) => {
            tracing::info!(slot = %created.id, %label, auth = created.auth.as_str(), %repository, "slot created by a GitHub Actions job");
        }
    }
    Ok((StatusCode::CREATED, Json(created)))
}

/// Opens a slot on the terms asked, within the relay's limits.
async fn open_slot(relay: &Relay, request: CreateSlot) -> Result<SlotCreated, ApiError> {
    if request.label.len() > 200 {
        return Err(ApiError::bad_request(
            "invalid_slot_request",
            "the label is longer than 200 bytes",
        ));
    }
    let now = SystemTime::now();
    let wanted = match request.deadline {
        Deadline::In(seconds) => now
            .checked_add(Duration::from_secs(seconds))
            .unwrap_or(now + relay.config.max_slot_lifetime),
        Deadline::At(instant) => instant,
    };
    if wanted <= now {
        return Err(ApiError::bad_request(
            "invalid_deadline",
            "the deadline is not in the future",
        ));
    }
    // Granted to the millisecond (what the store keeps), at most the configured lifetime away.
    let deadline = store::from_millis(store::to_millis(
        wanted.min(now + relay.config.max_slot_lifetime),
    ));
    let slot = Slot {
        id: SlotId::random(),
        auth: request.auth,
        label: request.label,
        created_at: now,
        deadline,
    };
    let token_error = |err: hookgate_auth::TokenError| {
        tracing::error!(error = %err, "cannot issue a slot token");
        ApiError::internal()
    };
    let token = match slot.auth {
        CallbackAuth::Bearer => Some(
            relay
                .tokens
                .issue(slot.id.as_str(), &relay.public_url, now, deadline)
                .map_err(token_error)?,
        ),
        CallbackAuth::HmacGithub | CallbackAuth::HmacStandard => None,
    };
    let read_token = relay
        .tokens
        .issue(
            slot.id.as_str(),
            &read_audience(relay, &slot.id),
            now,
            deadline + relay.config.retention,
        )
        .map_err(token_error)?;
    relay.store.backend().create_slot(&slot).await?;
    relay.slots.put(slot.clone());
    relay.metrics.slot_created();
    Ok(SlotCreated {
        callback_url: format!("{}/v1/callbacks/{}", relay.public_url, slot.id),
        id: slot.id,
        deadline,
        auth: slot.auth,
        token,
        read_token,
    })
}

/// The audience of a slot's read token: distinct from callback tokens, so neither can stand in
/// for the other.
fn read_audience(relay: &Relay, slot: &SlotId) -> String {
    format!("{}/v1/slots/{slot}", relay.public_url)
}

/// The terms of the slot with this id, from the cache or the store.
async fn find_slot(relay: &Relay, id: &SlotId) -> Result<Option<SlotTerms>, ApiError> {
    if let Some(terms) = relay.slots.terms(id) {
        return Ok(Some(terms));
    }
    let Some(slot) = relay.store.backend().slot(id).await? else {
        return Ok(None);
    };
    let terms = SlotTerms::from(&slot);
    relay.slots.put(slot);
    Ok(Some(terms))
}

// ---------------------------------------------------------------------------------------------
// Taking callbacks

async fn take_callback(
    State(relay): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let result = accept_callback(&relay, &id, &headers, body).await;
    let (outcome, status) = match &result {
        Ok((_, false)) => (CallbackOutcome::Stored, StatusCode::ACCEPTED),
        Ok((_, true)) => (CallbackOutcome::Duplicate, StatusCode::ACCEPTED),
        Err(err) => (CallbackOutcome::Rejected, err.status),
    };
    relay.metrics.callback(outcome, status.as_u16());
    match &result {
        Ok((accepted, duplicate)) => {
            tracing::info!(slot = %id, sequence = accepted.sequence, duplicate, "callback accepted");
        }
        Err(err) => {
            tracing::info!(slot = %id, status = err.status.as_u16(), code = err.code, "callback refused");
        }
    }
    result.map(|(accepted, _)| (StatusCode::ACCEPTED, Json(accepted)))
}

/// Checks and stores one callback; the flag tells whether it repeated a stored one.
async fn accept_callback(
    relay: &Relay,
    id: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Accepted, bool), ApiError> {
    let slot_id: SlotId = id.parse().map_err(|_| ApiError::no_slot())?;
    let slot = find_slot(relay, &slot_id)
        .await?
        .ok_or_else(ApiError::no_slot)?;
    let now = SystemTime::now();
    if now > slot.deadline {
        return Err(ApiError::past_deadline());
    }
    let stored_headers: Vec<(String, String)> = headers
        .iter()
        .filter(|(name, _)| !UNSTORED_HEADERS.contains(&name.as_str()))
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    check_credentials(relay, &slot_id, slot.auth, headers, &stored_headers, now)?;

    let body = read_body(body, headers, relay.config.max_body).await?;
    check_verdict(&body)?;

    let dedup_key = dedup_key(&stored_headers, &body, headers);
    let outcome = relay
        .store
        .add_callback(NewCallback {
            slot_id: slot_id.clone(),
            dedup_key,
            received_at: now,
            headers: stored_headers,
            body: body.to_vec(),
            max_per_slot: relay.config.max_callbacks_per_slot,
        })
        .await?;
    let accepted = |sequence| Accepted {
        slot: slot_id.clone(),
        sequence,
    };
    match outcome {
        AddOutcome::Stored { sequence } | AddOutcome::Duplicate { sequence } => {
            let duplicate = matches!(outcome, AddOutcome::Duplicate { .. });
            Ok((accepted(sequence), duplicate))
        }
        AddOutcome::Full => Err(ApiError::slot_full(relay.config.max_callbacks_per_slot)),
        AddOutcome::NoSlot => Err(ApiError::no_slot()),
    }
}

/// Reads a request body of at most `limit` bytes: 413 when it declares or turns out to be longer
/// (nothing more is read), 408 when it has not arrived within [`BODY_DEADLINE`].
async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(ApiError::too_large(limit));
    }
    match tokio::time::timeout(BODY_DEADLINE, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(ApiError::too_large(limit)),
        Err(_) => Err(ApiError::body_timeout(BODY_DEADLINE)),
    }
}

/// Bearer slots: the slot's own token, unexpired. HMAC slots: the signature headers in their
/// scheme's form and (Standard Webhooks) fresh; their value is the action's to check.
fn check_credentials(
    relay: &Relay,
    slot_id: &SlotId,
    auth: CallbackAuth,
    headers: &HeaderMap,
    stored_headers: &[(String, String)],
    now: SystemTime,
) -> Result<(), ApiError> {
    match auth {
        CallbackAuth::Bearer => {
            let token = headers
                .get(header::AUTHORIZATION)
                .and_then(|value| value.to_str().ok())
                .and_then(bearer_token)
                .ok_or_else(|| {
                    ApiError::unauthorized(
                        "this slot takes `Authorization: Bearer <the slot's token>`",
                    )
                })?;
            relay
                .tokens
                .verify(token, slot_id.as_str(), &relay.public_url, now)
                .map(|_| ())
                .map_err(|err| ApiError::unauthorized(format!("the slot token is refused: {err}")))
        }
        CallbackAuth::HmacGithub => Scheme::Github
            .check_form(stored_headers, now)
            .map_err(|err| ApiError::unauthorized(err.to_string())),
        CallbackAuth::HmacStandard => Scheme::Standard
            .check_form(stored_headers, now)
            .map_err(|err| ApiError::unauthorized(err.to_string())),
    }
}

/// The body must be a JSON object with a boolean `success` (Armory's callback), or with
/// `"final": false` (progress).
fn check_verdict(body: &[u8]) -> Result<(), ApiError> {
    Verdict::check(body).map(drop).map_err(|err| match err {
        VerdictError::NotJson(why) => {
            ApiError::bad_request("invalid_body", format!("the body is not JSON: {why}"))
        }
        VerdictError::NotAnObject => ApiError::bad_request(
            "invalid_body",
            "the body must be a JSON object with a boolean `success`, or with `\"final\": false` for progress",
        ),
        err @ (VerdictError::NotABoolean
        | VerdictError::FinalNotABoolean
        | VerdictError::OutputsNotAnObject) => {
            ApiError::bad_request("invalid_body", err.to_string())
        }
    })
}

/// What makes two deliveries the same: the Standard Webhooks message id when there is one, else
/// the body together with its signature (or bearer token), hashed.
fn dedup_key(stored_headers: &[(String, String)], body: &[u8], headers: &HeaderMap) -> String {
    use hookgate_auth::HeaderSource as _;
    if let Some(id) = stored_headers.header(hookgate_auth::standard::ID_HEADER) {
        return format!("id:{id}");
    }
    let mut hash = Sha256::new();
    hash.update(body);
    for name in [
        hookgate_auth::github::HEADER,
        hookgate_auth::standard::SIGNATURE_HEADER,
        header::AUTHORIZATION.as_str(),
    ] {
        hash.update([0]);
        if let Some(value) = headers.get(name) {
            hash.update(value.as_bytes());
        }
    }
    let mut key = String::with_capacity(71);
    // Writing to a String cannot fail.
    let _ = write!(key, "sha256:{:x}", hash.finalize());
    key
}

// ---------------------------------------------------------------------------------------------
// Long polls

#[derive(Debug, Deserialize)]
struct ReadQuery {
    #[serde(default)]
    after: u64,
    wait: Option<String>,
}

fn parse_wait(text: &str) -> Result<Duration, ApiError> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    humantime::parse_duration(text).map_err(|err| {
        ApiError::bad_request(
            "invalid_wait",
            format!("`wait` is not a duration (e.g. 30s, 1m, 30): {err}"),
        )
    })
}

async fn read_slot(
    State(relay): State<Shared>,
    Path(id): Path<String>,
    Query(query): Query<ReadQuery>,
    headers: HeaderMap,
) -> Result<Json<SlotCallbacks>, ApiError> {
    let slot_id: SlotId = id.parse().map_err(|_| ApiError::no_slot())?;
    authorize_reader(&relay, &slot_id, &headers)?;
    let wait = match &query.wait {
        Some(text) => parse_wait(text)?.min(relay.config.max_wait),
        None => Duration::ZERO,
    };
    // Nothing of the request but the slot's id is needed while waiting.
    drop((id, headers, query.wait));
    let deadline = find_slot(&relay, &slot_id)
        .await?
        .ok_or_else(ApiError::no_slot)?
        .deadline;
    let until = tokio::time::Instant::now() + wait;

    let callbacks = relay
        .store
        .wait_for_callbacks(
            &slot_id,
            query.after,
            MAX_CALLBACKS_PER_ANSWER,
            until,
            relay.shutdown.cancelled(),
            // Counted as waiting once the store had nothing for it, until it is answered.
            || relay.metrics.waiting(),
        )
        .await?;
    Ok(Json(SlotCallbacks {
        id: slot_id,
        deadline,
        callbacks,
    }))
}

/// A slot is read with its read token, or with a relay token.
fn authorize_reader(relay: &Relay, slot: &SlotId, headers: &HeaderMap) -> Result<(), ApiError> {
    let (token, is_relay_token) = presented_token(
        relay,
        headers,
        "send the slot's read token (or a relay token) as `Authorization: Bearer ...`",
    )?;
    if is_relay_token {
        return Ok(());
    }
    relay
        .tokens
        .verify(
            token,
            slot.as_str(),
            &read_audience(relay, slot),
            SystemTime::now(),
        )
        .map(|_| ())
        .map_err(|err| ApiError::unauthorized(format!("the read token is refused: {err}")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stop_reaches_listeners_from_before_and_after_it() {
        let signal = Arc::new(StopSignal::default());
        let before = signal.listen();
        let waiting = tokio::spawn(async move { before.stopped().await });
        let other = signal.listen();
        drop(other);
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        assert_eq!(signal.listeners.lock().unwrap().len(), 1);

        signal.stop();
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the listener from before the stop wakes")
            .expect("the listener's task does not fail");
        assert!(signal.listeners.lock().unwrap().is_empty());
        let after = signal.listen();
        tokio::time::timeout(Duration::from_secs(5), after.stopped())
            .await
            .expect("a listener from after the stop is stopped at once");
    }

    #[test]
    fn waits_parse_as_seconds_or_durations() {
        assert_eq!(parse_wait("30").ok(), Some(Duration::from_secs(30)));
        assert_eq!(parse_wait("30s").ok(), Some(Duration::from_secs(30)));
        assert_eq!(parse_wait("1m").ok(), Some(Duration::from_secs(60)));
        assert_eq!(parse_wait("250ms").ok(), Some(Duration::from_millis(250)));
        assert_eq!(
            parse_wait("soon").err().map(|err| err.status),
            Some(StatusCode::BAD_REQUEST)
        );
    }

    #[test]
    fn paths_are_labelled_by_their_route() {
        for (path, route) in [
            ("/v1/slots", "/v1/slots"),
            ("/v1/slots/0123abcd", "/v1/slots/{id}"),
            ("/v1/callbacks/0123abcd", "/v1/callbacks/{id}"),
            (
                "/v1/callbacks/0123abcd/callback",
                "/v1/callbacks/{id}/callback",
            ),
            ("/healthz", "/healthz"),
            ("/metrics", "/metrics"),
            ("/v1/slots/", "unmatched"),
            ("/v1/slots/a/b", "unmatched"),
            ("/v1/callbacks/a/other", "unmatched"),
            ("/", "unmatched"),
        ] {
            assert_eq!(route_of(path), route, "{path}");
        }
    }

    #[test]
    fn refused_verdicts_are_bad_requests() {
        assert!(check_verdict(br#"{"success": true}"#).is_ok());
        for bad in [&b"not json"[..], br#"[true]"#, br#"{"success": "true"}"#] {
            let err = check_verdict(bad).err();
            assert_eq!(err.map(|err| err.status), Some(StatusCode::BAD_REQUEST));
        }
    }

    #[test]
    fn deliveries_are_the_same_by_message_id_or_by_body_and_signature() {
        let mut signed = HeaderMap::new();
        signed.insert("x-hub-signature-256", "sha256=ab".parse().unwrap());
        let none = HeaderMap::new();
        let body = br#"{"success":true}"#;
        let a = dedup_key(&[], body, &signed);
        assert_eq!(a, dedup_key(&[], body, &signed));
        assert_ne!(a, dedup_key(&[], body, &none));
        assert_ne!(a, dedup_key(&[], br#"{"success":false}"#, &signed));
        let with_id = [("webhook-id".to_owned(), "msg_1".to_owned())];
        assert_eq!(dedup_key(&with_id, body, &none), "id:msg_1");
        assert_eq!(dedup_key(&with_id, b"other", &signed), "id:msg_1");
    }
}
