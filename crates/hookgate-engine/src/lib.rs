//! The gate engine of hookgate: runs the plan of one target and phase, renders templates, sends
//! requests, waits for results and emits events to reporters. It knows nothing of GitHub's API.

pub mod event;

pub use event::{Conclusion, Event, Reporter, StepInfo, StepOutcome};
