//! hookgate as a GitHub App: the relay answers GitHub's `deployment_protection_rule` webhooks
//! and runs the before-deployment gates of the repository's deployment file itself, with the
//! same engine as the action, so no runner waits. Gates are kept in the relay's store with
//! leases: a restart resumes every open gate, and of several replicas on one PostgreSQL
//! database exactly one drives each gate.
//!
//! [`App::open`] opens the gate store; [`App::extension`] gives the relay its `/github/webhook`
//! route, its metrics and the task that drives the gates.

mod driver;
mod durable;
pub mod gates;
pub mod github;
mod metrics;
pub mod settings;
mod webhook;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::post;
use hookgate_relay::{Extension, LocalSlots};
use tokio::sync::Notify;

pub use driver::MAX_STATUS_REPORTS;
pub use gates::{GateStore, GateStoreError};
pub use github::{AppIdentity, COMMENT_LIMIT};
pub use settings::GateSettings;
pub use webhook::parse_event;

use crate::metrics::AppMetrics;

/// Everything the App needs.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// The App's id and key, and GitHub's API URL.
    pub identity: AppIdentity,
    /// The webhook secret GitHub signs deliveries with.
    pub webhook_secret: hookgate_auth::github::Secret,
    /// How the server runs gates.
    pub settings: GateSettings,
    /// How long a replica's hold on a gate lasts without renewal; another replica takes the
    /// gate over that long after its holder died.
    pub lease: Duration,
    /// How often open gates are looked for (a new event is taken at once).
    pub claim_interval: Duration,
    /// The least time between two status reports of one gate.
    pub report_interval: Duration,
}

impl AppConfig {
    /// The defaults around an identity and a secret.
    pub fn new(identity: AppIdentity, webhook_secret: hookgate_auth::github::Secret) -> Self {
        AppConfig {
            identity,
            webhook_secret,
            settings: GateSettings::default(),
            lease: Duration::from_secs(30),
            claim_interval: Duration::from_secs(5),
            report_interval: Duration::from_secs(60),
        }
    }
}

/// What the webhook route and the driver share.
pub(crate) struct AppState {
    pub(crate) webhook_secret: hookgate_auth::github::Secret,
    pub(crate) settings: GateSettings,
    pub(crate) store: Arc<GateStore>,
    pub(crate) slots: LocalSlots,
    pub(crate) metrics: AppMetrics,
    pub(crate) wake: Notify,
    /// This replica's name in leases: unique per process.
    pub(crate) owner: String,
    pub(crate) lease: Duration,
    pub(crate) claim_interval: Duration,
    pub(crate) report_interval: Duration,
    /// GitHub's API: one HTTP client, and one installation token per repository.
    pub(crate) github: github::RepositoryApis,
    /// The gates' requests, one client for every gate, through the outbound policy.
    pub(crate) http: hookgate_engine::request::HttpSender,
}

/// The App, its gate store open.
pub struct App {
    config: AppConfig,
    store: Arc<GateStore>,
    github: github::RepositoryApis,
    http: hookgate_engine::request::HttpSender,
}

/// Why the App could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The gate store.
    #[error(transparent)]
    Store(#[from] GateStoreError),
    /// An HTTP client could not be set up.
    #[error("setting up the App's HTTP clients: {0}")]
    Client(String),
}

impl App {
    /// Opens the gate store in the database the relay's `--store` URL names, and sets up the
    /// HTTP clients every gate shares.
    pub async fn open(config: AppConfig, store_url: &str) -> Result<Self, AppError> {
        let github =
            github::RepositoryApis::new(config.identity.clone()).map_err(AppError::Client)?;
        let http = hookgate_engine::request::HttpSender::guarded(
            hookgate_engine::request::Timeouts::default(),
            Some(config.settings.outbound.clone()),
        )
        .map_err(AppError::Client)?;
        let store = Arc::new(GateStore::open(store_url).await?);
        Ok(App {
            config,
            store,
            github,
            http,
        })
    }

    /// The relay extension: `POST /github/webhook`, the gate metrics and the driver.
    pub fn extension(self, slots: LocalSlots) -> Extension {
        let owner = format!(
            "{}-{}",
            std::process::id(),
            hex::encode(rand::random::<[u8; 6]>())
        );
        tracing::info!(%owner, app_id = %self.config.identity.app_id, "GitHub App gates enabled");
        let state = Arc::new(AppState {
            webhook_secret: self.config.webhook_secret,
            settings: self.config.settings,
            store: self.store,
            slots,
            metrics: AppMetrics::default(),
            wake: Notify::new(),
            owner,
            lease: self.config.lease,
            claim_interval: self.config.claim_interval,
            report_interval: self.config.report_interval,
            github: self.github,
            http: self.http,
        });
        let router = Router::new()
            .route("/github/webhook", post(webhook::take))
            .layer(DefaultBodyLimit::disable())
            .with_state(state.clone());
        let rendered = state.clone();
        let driven = state.clone();
        Extension {
            router,
            metrics: Some(Arc::new(move || rendered.metrics.render())),
            task: Some(tokio::spawn(async move {
                driver::run(driven.clone()).await;
                driven.store.shut().await;
            })),
        }
    }
}
