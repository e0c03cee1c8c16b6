//! The container action's contract: the inputs `action.yml` declares are exactly those the
//! binary reads (and the README documents), and `hookgate action` runs the command the
//! `INPUT_*` variables name, as the runner sets them.

use std::collections::BTreeSet;
use std::path::Path;

use crate::common::hookgate;

fn repository_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Inputs declared in action.yml.
fn declared_inputs() -> BTreeSet<String> {
    let text =
        std::fs::read_to_string(repository_root().join("action.yml")).expect("read action.yml");
    let docs = yaml_rust2::YamlLoader::load_from_str(&text).expect("action.yml is YAML");
    let inputs = docs[0]["inputs"].as_hash().expect("action.yml has inputs");
    inputs
        .keys()
        .map(|k| k.as_str().expect("input names are text").to_owned())
        .collect()
}

/// Inputs the binary reads: every `input("NAME")` call in the sources that run in the action.
fn inputs_read_by_the_binary() -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for dir in ["src", "crates/hookgate-github/src"] {
        collect_input_calls(&repository_root().join(dir), &mut found);
    }
    found
}

fn collect_input_calls(dir: &Path, found: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).expect("read source dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            collect_input_calls(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("read source");
            for reader in INPUT_READERS {
                let call = format!("{reader}(\"");
                for (start, _) in text.match_indices(&call) {
                    // Only whole calls: the name preceded by a non-identifier character.
                    let before = text[..start].chars().next_back();
                    if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                        continue;
                    }
                    let rest = &text[start + call.len()..];
                    if let Some(end) = rest.find('"') {
                        found.insert(rest[..end].to_owned());
                    }
                }
            }
        }
    }
}

/// The functions that read an action input by its name: `context::input` and the small
/// wrappers around it (required text, a boolean flag).
const INPUT_READERS: [&str; 4] = ["input", "required", "flag", "boolean"];

#[test]
fn action_yml_declares_exactly_the_inputs_the_binary_reads() {
    let declared = declared_inputs();
    let read = inputs_read_by_the_binary();
    let unread: Vec<_> = declared.difference(&read).collect();
    let undeclared: Vec<_> = read.difference(&declared).collect();
    assert!(
        unread.is_empty(),
        "declared in action.yml but never read: {unread:?}"
    );
    assert!(
        undeclared.is_empty(),
        "read by the binary but not in action.yml: {undeclared:?}"
    );
    assert!(
        declared.len() >= 20,
        "suspiciously few inputs: {declared:?}"
    );
}

#[test]
fn action_runs_validate_from_input_variables() {
    hookgate()
        .current_dir(repository_root())
        .arg("action")
        .env("INPUT_COMMAND", "validate")
        .env("INPUT_DEPLOYMENT-FILE", "examples/hookgate-extensions.yml")
        .assert()
        .success();
}

#[test]
fn action_reports_a_missing_required_input() {
    let output = hookgate()
        .current_dir(repository_root())
        .arg("action")
        .env("INPUT_COMMAND", "plan")
        .env("INPUT_DEPLOYMENT-FILE", "examples/hookgate-extensions.yml")
        .output()
        .expect("run hookgate");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the `target` input is required"),
        "{stderr}"
    );
}

#[test]
fn action_refuses_an_unknown_command() {
    let output = hookgate()
        .arg("action")
        .env("INPUT_COMMAND", "deploy")
        .output()
        .expect("run hookgate");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("use run, validate, plan or callback"),
        "{stderr}"
    );
}
