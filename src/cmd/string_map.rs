//! Maps of names to text values written as JSON, YAML or `NAME=value` lines: `--secrets-file`,
//! and the action's `context` and `secrets` inputs. Parser messages are not shown, since they may
//! quote a secret.
//!
//! The lines are the least-privilege way to pass secrets in a workflow: one
//! `NAME=${{ secrets.NAME }}` line for each secret the deployment file names, each value taken
//! as it is (quotes, `:` and `#` included) up to the end of its line.

use anyhow::{anyhow, bail};
use indexmap::IndexMap;
use serde_json::Value;

/// Parses `text` (a JSON object or a YAML map) into names and text values; numbers and
/// booleans become their text. `what` names the source in messages, such as "the secrets file x".
pub fn parse(text: &str, what: &str) -> anyhow::Result<IndexMap<String, String>> {
    let not_a_map = || anyhow!("{what} must be a JSON object or YAML map of names to values");
    let not_scalar = |key: &str| anyhow!("`{key}` in {what} must be text, a number or a boolean");
    if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) {
        return map
            .into_iter()
            .map(|(key, value)| match value {
                Value::String(s) => Ok((key, s)),
                Value::Number(n) => Ok((key, n.to_string())),
                Value::Bool(b) => Ok((key, b.to_string())),
                _ => Err(not_scalar(&key)),
            })
            .collect();
    }
    if let Some(lines) = name_value_lines(text) {
        return Ok(lines);
    }
    let docs = yaml_rust2::YamlLoader::load_from_str(text).map_err(|err| {
        let marker = err.marker();
        anyhow!(
            "{what} is neither JSON nor YAML (YAML error at line {}, column {})",
            marker.line(),
            marker.col() + 1
        )
    })?;
    let Some(yaml_rust2::Yaml::Hash(hash)) = docs.into_iter().next() else {
        return Err(not_a_map());
    };
    let mut values = IndexMap::new();
    for (key, value) in hash {
        let yaml_rust2::Yaml::String(key) = key else {
            return Err(not_a_map());
        };
        let value = match value {
            yaml_rust2::Yaml::String(s) | yaml_rust2::Yaml::Real(s) => s,
            yaml_rust2::Yaml::Integer(i) => i.to_string(),
            yaml_rust2::Yaml::Boolean(b) => b.to_string(),
            _ => bail!(not_scalar(&key)),
        };
        values.insert(key, value);
    }
    Ok(values)
}

/// `NAME=value` lines (blank lines and `#` comments skipped), when every line is one; a name
/// starts with a letter or `_` and holds letters, digits, `_`, `-` and `.`.
fn name_value_lines(text: &str) -> Option<IndexMap<String, String>> {
    let mut values = IndexMap::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (name, value) = trimmed.split_once('=')?;
        let mut chars = name.chars();
        let named = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
        if !named {
            return None;
        }
        values.insert(name.to_owned(), value.trim_end_matches('\r').to_owned());
    }
    (!values.is_empty()).then_some(values)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn name_value_lines_keep_each_value_as_written() {
        let lines = parse(
            "# the secrets deploy.yml names\nchange_token=abc: #not a comment\n\nquoted=\"x\"='y'\nEMPTY=\n",
            "the `secrets` input",
        )
        .expect("lines");
        let values: Vec<(&str, &str)> = lines
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            values,
            [
                ("change_token", "abc: #not a comment"),
                ("quoted", "\"x\"='y'"),
                ("EMPTY", ""),
            ]
        );
        // A YAML map whose value holds `=` is still read as YAML.
        let yaml = parse("token: abc=\n", "x").expect("YAML");
        assert_eq!(yaml.get("token").map(String::as_str), Some("abc="));
    }

    #[test]
    fn json_and_yaml_maps_give_the_same_values() {
        let json = parse(
            r#"{"environment": "staging", "replicas": 3, "canary": true}"#,
            "x",
        )
        .expect("JSON map");
        let yaml =
            parse("environment: staging\nreplicas: 3\ncanary: true\n", "x").expect("YAML map");
        assert_eq!(json, yaml);
        assert_eq!(json.get("replicas").map(String::as_str), Some("3"));
    }

    #[test]
    fn nested_values_and_non_maps_are_refused_with_the_source_named() {
        let nested = parse(r#"{"a": {"b": 1}}"#, "the `context` input").expect_err("nested");
        assert_eq!(
            nested.to_string(),
            "`a` in the `context` input must be text, a number or a boolean"
        );
        let list = parse("- a\n- b\n", "the `secrets` input").expect_err("list");
        assert!(
            list.to_string().starts_with("the `secrets` input must be"),
            "{list}"
        );
    }
}
