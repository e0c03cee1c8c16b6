//! The gate engine of hookgate: runs the plan of one target and phase, renders templates, sends
//! requests, waits for results and emits events to reporters. It knows nothing of GitHub's
//! reporting API: it renders the dispatches of the GitHub webhook kinds and sends them, and reads
//! the runs they start, through its [`GithubPort`]; it reaches a relay through its [`Mailbox`].

pub mod backoff;
mod callback;
mod dispatch;
mod event;
pub mod github;
mod journal;
mod mailbox;
pub mod mask;
pub mod outbound;
pub mod outputs;
mod poll;
pub mod relay_mailbox;
pub mod request;
mod runner;
pub mod settings;
mod template;

pub use event::{Conclusion, Event, Reporter, StepInfo, StepOutcome};
pub use github::{Dispatch, Dispatched, FailedJob, GithubError, GithubPort, WorkflowRun};
pub use journal::{Journal, RecordedResponse, StepRecord};
pub use mailbox::{Mailbox, MailboxError};
pub use mask::Masker;
pub use runner::{RunError, RunReport, Runner, needs_mailbox};
pub use settings::{ARMORY_KEYS_PASSED, ArmoryValues, RunSettings};
