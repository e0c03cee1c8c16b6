//! Which secrets a deployment file uses (`{{ secrets.NAME }}` in its values), and the warnings
//! when the secrets passed to a run differ from them: a used one that is missing fails the webhook
//! that renders it, and an unused one is a secret handed to the step for nothing.

use std::collections::{BTreeMap, BTreeSet};

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::located::{Node, NodeValue, Span};

/// Each secret name the tree's text values use, with the place of its first use.
pub(crate) fn uses(tree: &Node) -> BTreeMap<String, Span> {
    let mut found = BTreeMap::new();
    let mut pending = vec![tree];
    while let Some(node) = pending.pop() {
        match &node.value {
            NodeValue::String(text) => {
                for name in names_in(text) {
                    found
                        .entry(name)
                        .and_modify(|span: &mut Span| {
                            if (node.span.line, node.span.col) < (span.line, span.col) {
                                *span = node.span;
                            }
                        })
                        .or_insert(node.span);
                }
            }
            NodeValue::Seq(items) => pending.extend(items),
            NodeValue::Map(entries) => pending.extend(entries.iter().map(|(_, value)| value)),
            NodeValue::Null | NodeValue::Bool(_) | NodeValue::Number(_) => {}
        }
    }
    found
}

/// The secret names inside the `{{ ... }}` expressions of `text`: `secrets.NAME`,
/// `secrets['NAME']` and `secrets["NAME"]`.
fn names_in(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else { break };
        let expression = &after[..close];
        let mut scan = expression;
        while let Some(at) = scan.find("secrets") {
            let before = scan[..at].chars().next_back();
            let tail = &scan[at + "secrets".len()..];
            scan = tail;
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.') {
                continue;
            }
            if let Some(name) = member_name(tail) {
                names.push(name.to_owned());
            }
        }
        rest = &after[close + 2..];
    }
    names
}

/// The member named right at the start of `text`: `.NAME` or `['NAME']` / `["NAME"]`.
fn member_name(text: &str) -> Option<&str> {
    if let Some(dotted) = text.strip_prefix('.') {
        let end = dotted
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'))
            .unwrap_or(dotted.len());
        return (end > 0).then(|| &dotted[..end]);
    }
    let quoted = text.strip_prefix('[')?.trim_start();
    let quote = quoted.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let inner = &quoted[1..];
    let end = inner.find(quote)?;
    (end > 0).then(|| &inner[..end])
}

/// Warnings for a run given the secrets `passed`, against the file's `uses`: each used secret
/// that is not passed (at its first use), and each passed secret that nothing uses.
pub(crate) fn compare(
    uses: &BTreeMap<String, Span>,
    passed: &BTreeSet<String>,
    diags: &mut Diagnostics,
) {
    for (name, span) in uses {
        if !passed.contains(name) {
            diags.push(
                Diagnostic::warning(
                    Some(*span),
                    format!("`secrets.{name}` is used here but no secret `{name}` is passed"),
                )
                .with_help(format!(
                    "add the line `{name}=${{{{ secrets.{name} }}}}` to the action's `secrets` input (or `--secret {name}=...`); the webhook fails when it renders this value"
                )),
            );
        }
    }
    for name in passed {
        if !uses.contains_key(name) {
            diags.push(
                Diagnostic::warning(
                    None,
                    format!("the secret `{name}` is passed but the file never uses `{{{{ secrets.{name} }}}}`"),
                )
                .with_help(format!(
                    "remove `{name}` from the `secrets` input: pass a step only the secrets it uses"
                )),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_found_in_every_form_and_only_inside_expressions() {
        assert_eq!(
            names_in(
                "Bearer {{ secrets.token }} and {{secrets['other-one']}}/{{ secrets[\"x\"] }}"
            ),
            ["token", "other-one", "x"]
        );
        assert_eq!(
            names_in("secrets.outside {{ context.secrets }}"),
            Vec::<String>::new()
        );
        assert_eq!(
            names_in("{{ mysecrets.a }} {{ secrets. }} {{ secrets }}"),
            Vec::<String>::new()
        );
        assert_eq!(names_in("{{ secrets.a }} {{ unclosed secrets.b"), ["a"]);
        assert_eq!(names_in("{{ secrets.a ~ secrets.b }}"), ["a", "b"]);
    }
}
