//! The hookgate relay: a small HTTP service that takes callbacks for waiting runs, keeps them
//! durably, and answers the runs' long polls. Runners take no inbound traffic, so the service a
//! gate calls sends its verdict here, and the waiting run fetches it. The relay is a mailbox, not a
//! judge: it stores raw bodies and signature headers untouched, and the run verifies them again.

pub mod store;
pub mod wakers;
