//! The deployment file of hookgate: Armory CD-as-a-Service's `deploy.yml` with hookgate's
//! extensions. This crate owns the model, loading with source locations, validation, the JSON
//! Schema and plans. It does no I/O beyond reading the file it is asked to load.

pub mod model;
pub mod plan;

pub use model::DeploymentFile;
pub use plan::{Phase, Plan, PlanError, PlannedStep, StepGroup, WebhookCall, plan};
