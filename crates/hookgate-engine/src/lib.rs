//! The gate engine of hookgate: runs the plan of one target and phase, renders templates, sends
//! requests, waits for results and emits events to reporters. It knows nothing of GitHub's
//! reporting API; it only sends the dispatch requests of GitHub webhook kinds.

pub mod backoff;
pub mod callback;
pub mod dispatch;
pub mod event;
pub mod github;
pub mod mailbox;
pub mod mask;
pub mod poll;
pub mod relay_mailbox;
pub mod request;
pub mod runner;
pub mod settings;
pub mod template;

pub use event::{Conclusion, Event, Reporter, StepInfo, StepOutcome};
pub use github::{Dispatch, Dispatched, GithubError, GithubPort, WorkflowRun};
pub use mailbox::{Mailbox, MailboxError};
pub use mask::Masker;
pub use runner::{RunError, RunReport, Runner, StepError, needs_github, needs_mailbox, step_infos};
pub use settings::{ArmoryValues, RunSettings};
