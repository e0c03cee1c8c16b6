//! The README stays in step with what it documents: its action-inputs table lists exactly the
//! inputs of `action.yml`, and its deployment-file reference names every key of the JSON Schema.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).expect("read README.md")
}

/// The text of the README section that starts with `heading`, up to the next `## ` heading.
fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let start = text
        .find(heading)
        .unwrap_or_else(|| panic!("README has no `{heading}`"));
    let rest = &text[start + heading.len()..];
    let end = rest.find("\n## ").unwrap_or(rest.len());
    &rest[..end]
}

/// Backticked names in the first column of a Markdown table.
fn first_column_names(table_text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in table_text.lines().filter(|l| l.starts_with('|')) {
        let first = line.split('|').nth(1).unwrap_or_default();
        for (i, part) in first.split('`').enumerate() {
            if i % 2 == 1 {
                names.insert(part.to_owned());
            }
        }
    }
    names
}

#[test]
fn readme_documents_exactly_the_inputs_of_action_yml() {
    let text = std::fs::read_to_string(root().join("action.yml")).expect("read action.yml");
    let docs = yaml_rust2::YamlLoader::load_from_str(&text).expect("action.yml is YAML");
    let declared: BTreeSet<String> = docs[0]["inputs"]
        .as_hash()
        .expect("inputs")
        .keys()
        .filter_map(|k| k.as_str().map(str::to_owned))
        .collect();
    let readme = readme();
    let documented = first_column_names(section(&readme, "## The action"));
    let missing: Vec<_> = declared.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&declared).collect();
    assert!(
        missing.is_empty(),
        "inputs of action.yml missing from the README's table: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "README documents inputs action.yml does not have: {extra:?}"
    );
}

/// Every property name anywhere in the schema.
fn schema_keys(value: &Value, keys: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Object(properties)) = map.get("properties") {
                keys.extend(properties.keys().cloned());
            }
            map.values().for_each(|v| schema_keys(v, keys));
        }
        Value::Array(items) => items.iter().for_each(|v| schema_keys(v, keys)),
        _ => {}
    }
}

#[test]
fn readme_reference_names_every_key_of_the_schema() {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("schema/deploy.schema.json"))
            .expect("read the schema"),
    )
    .expect("the schema is JSON");
    let mut keys = BTreeSet::new();
    schema_keys(&schema, &mut keys);
    assert!(keys.len() > 40, "suspiciously few schema keys: {keys:?}");
    let readme = readme();
    let reference = section(&readme, "## The deployment file");
    // A key counts as documented when it stands in backticks alone or as a part of a dotted path
    // (`poll.interval` documents `interval`).
    let documented: BTreeSet<&str> = reference
        .split('`')
        .skip(1)
        .step_by(2)
        .flat_map(|code| code.split(['.', ' ', ',', '{', '}']))
        .collect();
    let missing: Vec<_> = keys
        .iter()
        .filter(|k| !documented.contains(k.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "schema keys missing from the README's reference: {missing:?}"
    );
}
