//! The deployment file of hookgate: Armory CD-as-a-Service's `deploy.yml` with hookgate's
//! extensions. This crate owns the model, loading with source locations, validation, the JSON
//! Schema and plans. It does no I/O beyond reading the file it is asked to load.
//!
//! ```
//! let text = "
//! targets:
//!   staging:
//!     constraints:
//!       beforeDeployment:
//!         - runWebhook: {name: migrate}
//! webhooks:
//!   - name: migrate
//!     uriTemplate: https://example.com/migrate
//!     waitFor: none
//! ";
//! let loaded = hookgate_config::load_str("deploy.yml", text).expect("valid");
//! let plan = hookgate_config::plan(&loaded.file, "staging", hookgate_config::Phase::BeforeDeployment)
//!     .expect("a plan");
//! assert_eq!(plan.steps().count(), 1);
//!
//! let errors = hookgate_config::load_str("deploy.yml", "webhooks:\n  - name: x\n    uriTemplat: y\n")
//!     .expect_err("a misspelt key");
//! assert!(errors.to_string().contains("did you mean `uriTemplate`?"));
//! ```

pub mod diagnostic;
mod load;
pub mod located;
pub mod model;
pub mod plan;
pub mod schema;
mod secrets;
mod validate;

pub use diagnostic::{Diagnostic, Diagnostics, Severity};
pub use load::{Loaded, Source, load, load_str};
pub use model::DeploymentFile;
pub use plan::{Phase, Plan, PlanError, PlannedStep, StepGroup, WebhookCall, plan};
pub use validate::{MAX_CLIENT_PAYLOAD_KEYS, MAX_EVENT_TYPE_CHARS, MAX_WORKFLOW_INPUTS};
