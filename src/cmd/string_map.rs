//! Maps of names to text values written as JSON or YAML: `--secrets-file`, and the action's
//! `context` and `secrets` inputs. Parser messages are not shown, since they may quote a secret.

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

#[cfg(test)]
mod tests {
    use super::parse;

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
