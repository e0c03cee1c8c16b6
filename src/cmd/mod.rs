//! One module per subcommand: each turns its arguments into calls on the library crates and
//! decides its exit code.

pub mod callback;
pub mod healthcheck;
pub mod plan;
pub mod relay;
pub mod run;
pub mod schema;
pub mod validate;

/// Every gate passed (or was skipped).
pub const EXIT_OK: u8 = 0;

/// A gate failed, timed out or was cancelled.
pub const EXIT_GATE_FAILED: u8 = 1;

/// Wrong usage or an invalid deployment file.
pub const EXIT_USAGE: u8 = 2;
