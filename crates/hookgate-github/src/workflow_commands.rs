//! GitHub Actions workflow commands written to stdout: `::group::`, `::error::`, `::warning::`,
//! `::add-mask::`, with the runner's escaping, so a message with a newline or a `%` shows as
//! written and cannot start a command of its own.

use std::io::Write;

pub use hookgate_engine::mask::{add_mask_command, escape_data, escape_property};

/// `::error title=...::message`.
pub fn error_line(title: &str, message: &str) -> String {
    format!(
        "::error title={}::{}",
        escape_property(title),
        escape_data(message)
    )
}

/// `::warning title=...::message`.
pub fn warning_line(title: &str, message: &str) -> String {
    format!(
        "::warning title={}::{}",
        escape_property(title),
        escape_data(message)
    )
}

/// `::group::title`.
pub fn group_line(title: &str) -> String {
    format!("::group::{}", escape_data(title))
}

/// `::endgroup::`.
pub const END_GROUP: &str = "::endgroup::";

/// Writes lines to stdout in one piece, so lines of parallel steps do not interleave.
pub fn emit(lines: &[String]) {
    let mut text = String::new();
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    let mut out = std::io::stdout().lock();
    // Nowhere to report a closed stdout; the run's verdict does not depend on it.
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Lines from outside (a callback's message, a polled status) made safe to log: when one of
/// them would be read as a workflow command, they are wrapped in `::stop-commands::`, so the
/// runner shows them as text.
pub fn untrusted(lines: Vec<String>) -> Vec<String> {
    if !lines.iter().any(|line| line.trim_start().starts_with("::")) {
        return lines;
    }
    let token = uuid::Uuid::new_v4().simple().to_string();
    let mut wrapped = Vec::with_capacity(lines.len() + 2);
    wrapped.push(format!("::stop-commands::{token}"));
    wrapped.extend(lines);
    wrapped.push(format!("::{token}::"));
    wrapped
}

/// Tells the runner to hide `secret` in the log, line by line (the runner masks single lines).
pub fn add_mask(secret: &str) {
    let lines: Vec<String> = secret
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(add_mask_command)
        .collect();
    emit(&lines);
}

/// A reporting problem: shown as a warning, never a change of the verdict.
pub fn reporting_warning(what: &str, error: &dyn std::fmt::Display) {
    tracing::debug!(what, %error, "GitHub reporting failed");
    emit(&[warning_line(
        "hookgate reporting",
        &format!("{what}: {error}"),
    )]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_cannot_break_out_of_a_command() {
        assert_eq!(
            error_line("gate: a, b", "50% done\nline two\r"),
            "::error title=gate%3A a%2C b::50%25 done%0Aline two%0D"
        );
        assert_eq!(group_line("step\n::x::"), "::group::step%0A::x::");
        assert_eq!(warning_line("t", "m"), "::warning title=t::m");
    }

    #[test]
    fn outside_text_cannot_issue_commands() {
        let safe = vec!["all good".to_owned()];
        assert_eq!(untrusted(safe.clone()), safe);
        let wrapped = untrusted(vec!["ok".to_owned(), "  ::add-mask::x".to_owned()]);
        assert_eq!(wrapped.len(), 4);
        let token = wrapped[0]
            .strip_prefix("::stop-commands::")
            .unwrap_or_default();
        assert!(!token.is_empty());
        assert_eq!(wrapped[3], format!("::{token}::"));
    }
}
