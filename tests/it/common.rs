//! Helpers shared by the integration tests.

// Not every test module uses every helper.
#![allow(dead_code)]

use assert_cmd::Command;

/// The `hookgate` binary, with the GitHub Actions environment of the machine removed so tests
/// behave the same on a developer's machine and in CI.
pub fn hookgate() -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin!("hookgate"));
    for key in runner_variables() {
        cmd.env_remove(key);
    }
    cmd
}

/// The variables of this machine's GitHub Actions environment (`GITHUB_*`, `RUNNER_*`,
/// `INPUT_*`, `CI`), which a child started by a test must not inherit.
pub fn runner_variables() -> impl Iterator<Item = String> {
    std::env::vars().map(|(key, _)| key).filter(|key| {
        key.starts_with("GITHUB_")
            || key.starts_with("RUNNER_")
            || key.starts_with("INPUT_")
            || key == "CI"
    })
}
