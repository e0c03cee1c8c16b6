//! One module per subcommand: each turns its arguments into calls on the library crates and
//! decides its exit code.

pub mod action;
pub mod callback;
pub mod healthcheck;
pub mod plan;
pub mod relay;
pub mod run;
pub mod schema;
pub mod string_map;
pub mod validate;

/// Every gate passed (or was skipped).
pub const EXIT_OK: u8 = 0;

/// A gate failed, timed out or was cancelled.
pub const EXIT_GATE_FAILED: u8 = 1;

/// Wrong usage or an invalid deployment file.
pub const EXIT_USAGE: u8 = 2;

/// A secret from the command line or an action input; `Debug` never shows it.
#[derive(Clone)]
pub struct Redacted(pub String);

impl std::str::FromStr for Redacted {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Self(text.to_owned()))
    }
}

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}
