//! Loading a deployment file: read, parse with locations, validate, and hand back either the
//! model (with any warnings) or every problem of the file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::located::{self, Node, Span};
use crate::model::DeploymentFile;
use crate::{secrets, validate};

/// A deployment file that passed validation.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The model.
    pub file: DeploymentFile,
    /// The file's name and text, to point at places in it later.
    pub source: Source,
    /// Warnings: things that are ignored or probably not meant. Empty when there are none.
    pub warnings: Diagnostics,
    /// Each secret the file uses (`{{ secrets.NAME }}`), with the place of its first use.
    secret_uses: BTreeMap<String, Span>,
}

impl Loaded {
    /// The names of the secrets the file uses (`{{ secrets.NAME }}`), in order.
    pub fn secrets_used(&self) -> impl Iterator<Item = &str> {
        self.secret_uses.keys().map(String::as_str)
    }

    /// Warnings for a run given the secrets named `passed`: each secret the file uses that is not
    /// passed, at its first use, and each one passed that the file never uses.
    pub fn check_secrets<'a>(&self, passed: impl IntoIterator<Item = &'a str>) -> Diagnostics {
        let passed: BTreeSet<String> = passed.into_iter().map(str::to_owned).collect();
        let mut diags = Diagnostics::new(&self.source.name, &self.source.text);
        secrets::compare(&self.secret_uses, &passed, &mut diags);
        diags.sort();
        diags
    }
}

/// A file's name and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The name as given (a path, or a label).
    pub name: String,
    /// The text.
    pub text: String,
}

/// Reads and validates the deployment file at `path`.
///
/// On success the model comes with the warnings found; on failure [`Diagnostics`] holds every
/// problem found (a file that cannot be read is one problem without a place). Render it with
/// `Display` for people and [`Diagnostics::github_annotations`] for GitHub Actions.
pub fn load(path: impl AsRef<Path>) -> Result<Loaded, Diagnostics> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|err| {
        let mut diags = Diagnostics::new(&name, "");
        diags.push(
            Diagnostic::error(None, format!("cannot read the deployment file: {err}"))
                .with_help("pass the path of your deploy.yml with `--file PATH`"),
        );
        diags
    })?;
    let text = String::from_utf8(bytes).map_err(|err| {
        let mut diags = Diagnostics::new(&name, "");
        diags.push(
            Diagnostic::error(
                None,
                format!(
                    "the deployment file is not UTF-8 text (invalid byte at offset {})",
                    err.utf8_error().valid_up_to()
                ),
            )
            .with_help("save the file as UTF-8"),
        );
        diags
    })?;
    load_str(&name, &text)
}

/// Validates deployment-file `text`, naming it `name` in messages.
pub fn load_str(name: &str, text: &str) -> Result<Loaded, Diagnostics> {
    let mut diags = Diagnostics::new(name, text);
    let mut secret_uses = BTreeMap::new();
    let file = match parse_repairing(text, &mut diags) {
        Some(mut tree) => {
            secret_uses = secrets::uses(&tree);
            validate::check(&mut tree, &mut diags)
        }
        None => None,
    };
    diags.sort();
    match file {
        Some(file) if !diags.has_errors() => Ok(Loaded {
            file,
            source: Source {
                name: name.to_owned(),
                text: text.to_owned(),
            },
            warnings: diags,
            secret_uses,
        }),
        _ => Err(diags),
    }
}

/// Parses `text`. When YAML refuses it at a value that starts with `{{` without quotes (as
/// Armory's documentation prints some), that value is reported, quoted, and the text parsed
/// again, so the rest of the file is still checked. Only the value on the line YAML stumbles on
/// is touched each time, so text inside block scalars that merely looks similar is left alone.
fn parse_repairing(text: &str, diags: &mut Diagnostics) -> Option<Node> {
    let candidates = find_unquoted_templates(text);
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut current = text.to_owned();
    // Each round repairs one line, so there are at most that many rounds.
    for _ in 0..=candidates.len() {
        let err = match located::parse_lenient(&current) {
            Ok((tree, duplicates)) => {
                report_duplicates(&duplicates, diags);
                return Some(tree);
            }
            Err(err) => err,
        };
        let Some((span, raw)) = candidates
            .iter()
            .find(|(span, _)| span.line == err.span.line)
        else {
            // Lines keep their number through repairs, so the place still holds.
            diags.push(parse_error(&err));
            return None;
        };
        diags.push(validate::unquoted_template(*span, raw));
        let Some(line) = lines.get_mut(span.line - 1) else {
            diags.push(parse_error(&err));
            return None;
        };
        let start: usize = line.chars().take(span.col - 1).map(char::len_utf8).sum();
        let end = start + raw.len();
        if line.get(start..end) != Some(raw.as_str()) {
            diags.push(parse_error(&err));
            return None;
        }
        line.replace_range(start..end, &validate::quote(raw));
        current = lines.join("\n");
    }
    None
}

fn report_duplicates(duplicates: &[located::YamlError], diags: &mut Diagnostics) {
    for duplicate in duplicates {
        diags.push(
            Diagnostic::error(Some(duplicate.span), duplicate.message.clone())
                .with_help("keep one of them: YAML keeps only one value per key"),
        );
    }
}

fn parse_error(err: &located::YamlError) -> Diagnostic {
    Diagnostic::error(Some(err.span), format!("this is not valid YAML: {}", err.message)).with_help(
        "check the indentation and quoting around this place; values with `: `, `#`, `{` or `[` need quotes",
    )
}

/// Values written `key: {{...}}...` or `- {{...}}...` without quotes, with their places.
fn find_unquoted_templates(text: &str) -> Vec<(Span, String)> {
    let mut found = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let Some(start) = unquoted_value_start(line) else {
            continue;
        };
        let value = &line[start..];
        let value = match value.find(" #") {
            Some(comment) => &value[..comment],
            None => value,
        }
        .trim_end();
        found.push((
            Span {
                line: index + 1,
                col: line[..start].chars().count() + 1,
                len: value.chars().count(),
            },
            value.to_owned(),
        ));
    }
    found
}

/// Where the value of a block `key: value` or `- value` line starts, when it starts with `{{`.
fn unquoted_value_start(line: &str) -> Option<usize> {
    let mut rest = line.trim_start();
    let mut offset = line.len() - rest.len();
    if rest.starts_with('#') {
        return None;
    }
    while let Some(after) = rest.strip_prefix("- ") {
        let trimmed = after.trim_start();
        offset += rest.len() - trimmed.len();
        rest = trimmed;
    }
    if rest.starts_with("{{") {
        return Some(offset);
    }
    if rest.starts_with(['"', '\'', '{', '[']) {
        return None;
    }
    let colon = rest.find(": ")?;
    let after = &rest[colon + 2..];
    let value = after.trim_start();
    if value.starts_with("{{") {
        return Some(offset + colon + 2 + (after.len() - value.len()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_unquoted_templates_in_block_lines() {
        let text = "a:\n  - key: Location\n    value: {{armory.callbackUri}}/callback # here\n  - {{x}}\n  quoted: \"{{y}}\"\n";
        let found = find_unquoted_templates(text);
        assert_eq!(found.len(), 2);
        assert_eq!(
            found[0].0,
            Span {
                line: 3,
                col: 12,
                len: 31
            }
        );
        assert_eq!(found[0].1, "{{armory.callbackUri}}/callback");
        assert_eq!(found[1].0.line, 4);
    }
}
