//! Fitting text into GitHub's limits and shared wording: check-run output fields (65535 bytes
//! each), deployment-status descriptions (140 characters), table cells, query values, durations,
//! the emoji of a conclusion.

use std::borrow::Cow;
use std::time::Duration;

use hookgate_engine::{Conclusion, StepInfo};

/// GitHub's limit for a check run's output title, summary and text, in bytes.
pub const CHECK_OUTPUT_LIMIT: usize = 65_535;
/// GitHub's limit for a deployment status's description, in characters.
pub const DEPLOYMENT_DESCRIPTION_LIMIT: usize = 140;

/// `text` cut to at most `max` bytes on a character boundary, ending with a note that says how
/// much was cut, so a reader knows the text is not whole.
pub fn cut_to_bytes(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let note = |left_out: usize| {
        format!(
            "\n\n… (cut to fit GitHub's limit: {left_out} bytes left out; the workflow run's log has it all)"
        )
    };
    // The note for the whole length is at least as long as the final one (fewer digits).
    let keep = floor_char_boundary(text, max.saturating_sub(note(text.len()).len()));
    let mut cut = String::with_capacity(max);
    cut.push_str(&text[..keep]);
    cut.push_str(&note(text.len() - keep));
    Cow::Owned(cut)
}

/// `text` cut to at most `max` characters, ending with `…` when cut.
pub fn cut_to_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

fn floor_char_boundary(text: &str, index: usize) -> usize {
    if index >= text.len() {
        return text.len();
    }
    (0..=index)
        .rev()
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0)
}

/// The first line of a Markdown message, for one-line places.
pub fn first_line(text: &str) -> &str {
    text.lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or("")
}

/// A table cell: pipes and HTML tags escaped (an error page's `<html>` must not end the table),
/// line breaks as `<br>`, at most `max` characters.
pub fn table_cell(text: &str, max: usize) -> String {
    cut_to_chars(text.trim(), max)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('|', "\\|")
        .replace("\r\n", "<br>")
        .replace('\n', "<br>")
}

/// A short human duration: `850ms`, `12s`, `3m 4s`.
pub fn short_duration(duration: Duration) -> String {
    if duration < Duration::from_secs(1) {
        return format!("{}ms", duration.as_millis());
    }
    humantime::format_duration(Duration::from_secs(duration.as_secs())).to_string()
}

/// How a step's result is known, for display: its wait mode, or its kind when it has none.
pub fn wait_mode(step: &StepInfo) -> &str {
    if step.wait_mode.is_empty() {
        &step.kind
    } else {
        &step.wait_mode
    }
}

/// The emoji shown beside a conclusion.
pub fn emoji(conclusion: Conclusion) -> &'static str {
    match conclusion {
        Conclusion::Success => "✅",
        Conclusion::Failure => "❌",
        Conclusion::Cancelled => "🚫",
        Conclusion::TimedOut => "⏱️",
        Conclusion::Skipped => "⏭️",
    }
}

/// Percent-encodes a query value (everything but RFC 3986's unreserved characters).
pub fn query_value(text: &str) -> String {
    hookgate_engine::request::percent_encode(text, b"-._~")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_on_a_char_boundary_with_a_note() {
        let text = "é".repeat(40_000); // 80 000 bytes
        let cut = cut_to_bytes(&text, CHECK_OUTPUT_LIMIT);
        assert!(cut.len() <= CHECK_OUTPUT_LIMIT);
        assert!(cut.contains("cut to fit GitHub's limit"));
        assert!(cut.starts_with("éé"));
        let kept = cut.split("\n\n…").next().map(str::len).unwrap_or(0);
        assert!(cut.contains(&format!("{} bytes left out", 80_000 - kept)));
    }

    #[test]
    fn short_text_is_untouched() {
        assert!(matches!(cut_to_bytes("ok", 10), Cow::Borrowed("ok")));
        assert_eq!(cut_to_chars("abc", 3), "abc");
        assert_eq!(cut_to_chars("abcd", 3), "ab…");
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(query_value("prod eu/1"), "prod%20eu%2F1");
        assert_eq!(query_value("é"), "%C3%A9");
    }

    #[test]
    fn cells_stay_in_their_column() {
        assert_eq!(table_cell("a|b\nc", 100), "a\\|b<br>c");
        assert_eq!(
            table_cell("<html><body>x & y</body>", 100),
            "&lt;html&gt;&lt;body&gt;x &amp; y&lt;/body&gt;"
        );
        assert_eq!(short_duration(Duration::from_millis(850)), "850ms");
        assert_eq!(short_duration(Duration::from_millis(184_400)), "3m 4s");
    }
}
