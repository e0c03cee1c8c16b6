//! A step's outputs: what its callbacks return in `outputs`, kept within bounds per step, for
//! `steps['NAME'].outputs.KEY` and the action's outputs. (GitHub takes 1 MB of outputs per job,
//! and the action writes each output three times; the bounds keep one step well within that, not
//! a run of many.)
//!
//! A name is a letter or `_`, then letters, digits, `_` or `-` (GitHub's output names), at most
//! [`MAX_NAME`] bytes; a value is cut at [`MAX_VALUE`] bytes; a step keeps at most
//! [`MAX_OUTPUTS`] names and [`MAX_TOTAL`] bytes of values. What does not fit is left out or cut,
//! each time with a note for the log, never silently. A later callback's value replaces an
//! earlier one's.

use std::collections::BTreeMap;

use hookgate_config::model::is_output_name;

use crate::mask::Masker;

/// The longest output name, in bytes.
pub const MAX_NAME: usize = hookgate_config::model::MAX_OUTPUT_NAME;
/// The longest output value, in bytes; a longer one is cut.
pub const MAX_VALUE: usize = 16 * 1024;
/// The most outputs one step keeps.
pub const MAX_OUTPUTS: usize = 100;
/// The most bytes of values one step keeps.
pub const MAX_TOTAL: usize = 256 * 1024;

/// One step's outputs.
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    values: BTreeMap<String, String>,
}

impl Outputs {
    /// The outputs kept, by name.
    pub fn values(&self) -> &BTreeMap<String, String> {
        &self.values
    }

    /// Takes `given` in, each value masked with `masker` before anything is cut (so no part of
    /// a secret is left at a cut); returns a note for each output left out or cut.
    pub fn merge(&mut self, given: BTreeMap<String, String>, masker: &Masker) -> Vec<String> {
        let mut notes = Vec::new();
        for (name, value) in given {
            let mut value = masker.mask(&value);
            if !is_output_name(&name) {
                notes.push(format!(
                    "output `{}` left out: a name is a letter or `_`, then letters, digits, `_` or `-`, at most {MAX_NAME} bytes",
                    shown_name(&name)
                ));
                continue;
            }
            if value.len() > MAX_VALUE {
                let cut = floor_char_boundary(&value, MAX_VALUE);
                notes.push(format!(
                    "output `{name}` cut to {cut} of its {} bytes (at most {MAX_VALUE} each)",
                    value.len()
                ));
                value.truncate(cut);
            }
            let replaced = self.values.get(&name).map_or(0, String::len);
            let total = self.total() - replaced + value.len();
            if !self.values.contains_key(&name) && self.values.len() >= MAX_OUTPUTS {
                notes.push(format!(
                    "output `{name}` left out: a step keeps at most {MAX_OUTPUTS} outputs"
                ));
                continue;
            }
            if total > MAX_TOTAL {
                notes.push(format!(
                    "output `{name}` left out: a step keeps at most {MAX_TOTAL} bytes of outputs"
                ));
                continue;
            }
            self.values.insert(name, value);
        }
        notes
    }

    fn total(&self) -> usize {
        self.values.values().map(String::len).sum()
    }
}

/// A name as shown in a note: at most 40 bytes, control characters escaped.
fn shown_name(name: &str) -> String {
    let cut = floor_char_boundary(name, 40);
    let mut shown: String = name[..cut].escape_debug().collect();
    if cut < name.len() {
        shown.push('…');
    }
    shown
}

fn floor_char_boundary(text: &str, at: usize) -> usize {
    let mut end = at.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn later_values_replace_earlier_ones() {
        let mut outputs = Outputs::default();
        assert!(
            outputs
                .merge(given(&[("url", "a"), ("count", "1")]), &Masker::new())
                .is_empty()
        );
        assert!(
            outputs
                .merge(given(&[("url", "b")]), &Masker::new())
                .is_empty()
        );
        assert_eq!(outputs.values(), &given(&[("count", "1"), ("url", "b")]));
    }

    #[test]
    fn names_github_would_refuse_are_left_out_with_a_note() {
        let mut outputs = Outputs::default();
        let long = "n".repeat(MAX_NAME + 1);
        let notes = outputs.merge(
            given(&[
                ("1st", "x"),
                ("a b", "x"),
                ("new\nline", "x"),
                (&long, "x"),
                ("", "x"),
                ("_ok-1", "y"),
            ]),
            &Masker::new(),
        );
        assert_eq!(outputs.values(), &given(&[("_ok-1", "y")]));
        assert_eq!(notes.len(), 5, "{notes:?}");
        assert!(
            notes.iter().any(|n| n.contains("`new\\nline`")),
            "{notes:?}"
        );
        assert!(notes.iter().any(|n| n.contains('…')), "{notes:?}");
    }

    #[test]
    fn long_values_are_cut_and_the_totals_bounded() {
        let mut outputs = Outputs::default();
        let long = "é".repeat(MAX_VALUE);
        let notes = outputs.merge(given(&[("log", &long)]), &Masker::new());
        assert_eq!(outputs.values()["log"].len(), MAX_VALUE);
        assert!(
            notes[0].contains("cut to 16384 of its 32768 bytes"),
            "{notes:?}"
        );

        let mut outputs = Outputs::default();
        let value = "v".repeat(MAX_VALUE);
        for n in 0..MAX_TOTAL / MAX_VALUE {
            assert!(
                outputs
                    .merge(given(&[(&format!("part{n}"), &value)]), &Masker::new())
                    .is_empty()
            );
        }
        let notes = outputs.merge(given(&[("one_more", "x")]), &Masker::new());
        assert!(notes[0].contains("at most 262144 bytes"), "{notes:?}");
        // Replacing a value does not count it twice.
        assert!(
            outputs
                .merge(given(&[("part0", &value)]), &Masker::new())
                .is_empty()
        );

        let mut outputs = Outputs::default();
        let many: Vec<(String, String)> = (0..=MAX_OUTPUTS)
            .map(|n| (format!("o{n}"), "x".to_owned()))
            .collect();
        let notes = outputs.merge(many.into_iter().collect(), &Masker::new());
        assert_eq!(outputs.values().len(), MAX_OUTPUTS);
        assert_eq!(notes.len(), 1, "{notes:?}");
    }
}
