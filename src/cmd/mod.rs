//! One module per subcommand: each turns its arguments into calls on the library crates and
//! decides its exit code.

pub mod callback;
pub mod healthcheck;
pub mod plan;
pub mod relay;
pub mod run;
pub mod schema;
pub mod validate;

/// Wrong usage or an invalid deployment file.
pub const EXIT_USAGE: u8 = 2;
