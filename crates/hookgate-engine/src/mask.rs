//! Secret masking. Every secret value the run knows (the `--secret` values, slot tokens, HMAC
//! secrets, GitHub tokens) is registered here before anything that could contain it is printed,
//! and every message the engine emits goes through [`Masker::mask`]. In GitHub Actions each value
//! is also announced with `::add-mask::` so the runner hides it in the job log.

pub use hookgate_config::diagnostic::{escape_data, escape_property};
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

/// What replaces a secret value in output.
pub const MASK: &str = "***";

/// The set of secret values of one run. Cheap to clone; clones share the set.
#[derive(Clone, Default)]
pub struct Masker {
    inner: Arc<MaskerInner>,
}

#[derive(Default)]
struct MaskerInner {
    /// Registered values, longest first so a secret that contains another is masked whole.
    values: Mutex<Vec<String>>,
    /// Whether to print `::add-mask::` for each new value (inside GitHub Actions).
    announce: bool,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Masker").finish_non_exhaustive()
    }
}

impl Masker {
    /// A masker that only replaces values in text.
    pub fn new() -> Self {
        Self::default()
    }

    /// A masker that also prints `::add-mask::VALUE` on stdout for every value registered, as the
    /// GitHub Actions runner expects, so values are hidden in the job log even where hookgate's
    /// own masking cannot reach (output of other tools, debug logs).
    pub fn announcing() -> Self {
        Masker {
            inner: Arc::new(MaskerInner {
                values: Mutex::new(Vec::new()),
                announce: true,
            }),
        }
    }

    /// Registers a secret value. Multi-line values are registered line by line too, as the
    /// runner masks line by line. Empty values are ignored (they would mask everything).
    pub fn add(&self, value: &str) {
        let mut parts: Vec<&str> = vec![value];
        if value.contains('\n') {
            parts.extend(value.lines());
        }
        let mut values = self
            .inner
            .values
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for part in parts {
            let part = part.trim_end_matches('\r');
            if part.trim().is_empty() || values.iter().any(|v| v == part) {
                continue;
            }
            if self.inner.announce && !part.contains('\n') {
                let mut out = std::io::stdout().lock();
                // A failed write to stdout cannot be reported anywhere better; masking still works.
                let _ = writeln!(out, "{}", add_mask_command(part));
                let _ = out.flush();
            }
            values.push(part.to_owned());
            // JSON-escaped forms appear in bodies and messages that quote them, URL-encoded
            // forms (the `urlencode` filter) in URLs that messages name.
            let mut forms = vec![url_encoded(part)];
            if let Ok(quoted) = serde_json::to_string(part) {
                forms.push(quoted[1..quoted.len() - 1].to_owned());
            }
            for form in forms {
                if form != part && !values.contains(&form) {
                    values.push(form);
                }
            }
        }
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    }

    /// `text` with every registered value replaced by `***`.
    pub fn mask(&self, text: &str) -> String {
        let values = self
            .inner
            .values
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut out = text.to_owned();
        for value in values.iter() {
            if out.contains(value.as_str()) {
                out = out.replace(value.as_str(), MASK);
            }
        }
        out
    }

    /// How many values are registered.
    pub fn len(&self) -> usize {
        self.inner
            .values
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no value is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `value` as the templates' `urlencode` filter writes it: every byte but ASCII letters, digits
/// and `/ . - _` as `%XX`.
fn url_encoded(value: &str) -> String {
    crate::request::percent_encode(value, b"/.-_")
}

/// The runner's `::add-mask::` command for one line. The runner unescapes `%25`, `%0D` and
/// `%0A` in a command's value, so a value with a `%` is escaped to be masked as it is.
pub fn add_mask_command(value: &str) -> String {
    format!("::add-mask::{}", escape_data(value))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn masks_every_occurrence_and_the_longest_value_first() {
        let masker = Masker::new();
        masker.add("abc");
        masker.add("abcdef");
        assert_eq!(masker.mask("x abcdef y abc"), "x *** y ***");
    }

    #[test]
    fn masks_lines_of_multi_line_values_and_json_escaped_forms() {
        let masker = Masker::new();
        masker.add("line-one\nline-two");
        masker.add("q\"uote");
        assert_eq!(masker.mask("saw line-two"), "saw ***");
        assert_eq!(masker.mask(r#"{"a":"q\"uote"}"#), r#"{"a":"***"}"#);
    }

    #[test]
    fn announced_values_are_escaped_as_the_runner_unescapes_them() {
        assert_eq!(add_mask_command("plain"), "::add-mask::plain");
        assert_eq!(add_mask_command("a%0Ab%"), "::add-mask::a%250Ab%25");
    }

    #[test]
    fn masks_the_url_encoded_form_the_urlencode_filter_writes() {
        let masker = Masker::new();
        masker.add("tok+en/= é");
        let rendered = crate::template::render(
            "https://h/?key={{ secrets.key | urlencode }}",
            &serde_json::json!({"secrets": {"key": "tok+en/= é"}}),
            &crate::template::TemplateSite {
                webhook: "w",
                field: "uriTemplate",
            },
        )
        .unwrap();
        assert_eq!(masker.mask(&rendered), "https://h/?key=***");
        assert_eq!(
            masker.mask("GET https://h/?key=tok%2Ben/%3D%20%C3%A9 failed"),
            "GET https://h/?key=*** failed"
        );
    }

    #[test]
    fn ignores_empty_values() {
        let masker = Masker::new();
        masker.add("");
        masker.add("  ");
        assert!(masker.is_empty());
        assert_eq!(masker.mask("text"), "text");
    }
}
