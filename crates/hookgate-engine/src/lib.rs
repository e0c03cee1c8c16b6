//! The gate engine of hookgate: runs the plan of one target and phase, renders templates, sends
//! requests, waits for results and emits events to reporters. It knows nothing of GitHub's
//! reporting API; it only sends the dispatch requests of GitHub webhook kinds.

pub mod event;
pub mod github_api;
pub mod mailbox;

pub use event::{Conclusion, Event, Reporter, StepInfo, StepOutcome};
pub use mailbox::{Mailbox, MailboxError, OpenSlot, ReceivedCallback, SlotAuth, SlotRequest};
