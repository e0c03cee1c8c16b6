//! The JSON Schema (2020-12) of the deployment file, generated from the model with schemars.
//!
//! The schema is also the one list of which keys are allowed where: validation walks it to find
//! unknown keys (an object schema with `additionalProperties: false` is strict, as the model's
//! `deny_unknown_fields` structs are) and the values an enum accepts, so the model, the schema and
//! the "did you mean" hints cannot drift apart.

use schemars::generate::SchemaSettings;
use serde_json::Value;

use crate::model::DeploymentFile;

/// Where the committed schema is published; editors fetch it from here.
pub const SCHEMA_ID: &str =
    "https://raw.githubusercontent.com/hookgate/hookgate/main/schema/deploy.schema.json";

/// The JSON Schema of the deployment file, with `$schema` (2020-12) and `$id`.
pub fn json_schema() -> Value {
    let schema = SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<DeploymentFile>();
    let mut value = schema.to_value();
    if let Value::Object(map) = &mut value {
        // Put `$schema` and `$id` first, where readers look for them.
        let mut ordered = serde_json::Map::new();
        if let Some(dialect) = map.remove("$schema") {
            ordered.insert("$schema".to_owned(), dialect);
        }
        ordered.insert("$id".to_owned(), Value::String(SCHEMA_ID.to_owned()));
        ordered.extend(std::mem::take(map));
        *map = ordered;
    }
    value
}

/// The schema, generated once per process (validation walks it for every file it loads).
pub(crate) fn shared() -> &'static Value {
    static SCHEMA: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    SCHEMA.get_or_init(json_schema)
}

/// The schema as pretty JSON with a final newline, as committed in `schema/deploy.schema.json`.
pub fn json_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&json_schema()).unwrap_or_default();
    text.push('\n');
    text
}

/// A read-only view of one place in the schema, following `$ref`s into `$defs`.
#[derive(Clone, Copy)]
pub(crate) struct SchemaView<'a> {
    root: &'a Value,
    node: &'a Value,
}

impl<'a> SchemaView<'a> {
    /// The view of the whole schema.
    pub(crate) fn root(root: &'a Value) -> Self {
        SchemaView { root, node: root }
    }

    fn at(&self, node: &'a Value) -> Self {
        SchemaView {
            root: self.root,
            node: self.resolve(node),
        }
    }

    fn resolve(&self, mut node: &'a Value) -> &'a Value {
        // Bounded, in case a definition ever refers to itself.
        for _ in 0..16 {
            let Some(reference) = node.get("$ref").and_then(Value::as_str) else {
                break;
            };
            let Some(target) = reference
                .strip_prefix("#/")
                .and_then(|pointer| self.root.pointer(&format!("/{pointer}")))
            else {
                break;
            };
            node = target;
        }
        node
    }

    /// The branches of `anyOf`/`oneOf`, or the view itself.
    fn branches(&self) -> Vec<SchemaView<'a>> {
        for keyword in ["anyOf", "oneOf"] {
            if let Some(list) = self.node.get(keyword).and_then(Value::as_array) {
                return list.iter().map(|b| self.at(b)).collect();
            }
        }
        vec![*self]
    }

    fn is_type(&self, name: &str) -> bool {
        match self.node.get("type") {
            Some(Value::String(t)) => t == name,
            Some(Value::Array(ts)) => ts.iter().any(|t| t == name),
            _ => false,
        }
    }

    /// The object schema among the branches, if the value may be a map.
    pub(crate) fn object(&self) -> Option<SchemaView<'a>> {
        self.branches().into_iter().find(|b| {
            b.is_type("object")
                || b.node.get("properties").is_some()
                || b.node.get("additionalProperties").is_some()
        })
    }

    /// The array schema among the branches, if the value may be a list.
    pub(crate) fn array(&self) -> Option<SchemaView<'a>> {
        self.branches().into_iter().find(|b| b.is_type("array"))
    }

    /// Whether keys other than the listed properties are refused.
    pub(crate) fn is_strict(&self) -> bool {
        self.node.get("additionalProperties") == Some(&Value::Bool(false))
    }

    /// The listed property names, in schema order.
    pub(crate) fn property_names(&self) -> Vec<&'a str> {
        self.node
            .get("properties")
            .and_then(Value::as_object)
            .map(|props| props.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// The schema of the value under `key`.
    pub(crate) fn property(&self, key: &str) -> Option<SchemaView<'a>> {
        if let Some(prop) = self.node.get("properties").and_then(|p| p.get(key)) {
            return Some(self.at(prop));
        }
        match self.node.get("additionalProperties") {
            Some(extra @ Value::Object(_)) => Some(self.at(extra)),
            _ => None,
        }
    }

    /// The schema of the items of a list.
    pub(crate) fn items(&self) -> Option<SchemaView<'a>> {
        self.node.get("items").map(|items| self.at(items))
    }

    /// The text values an enum accepts (`enum`, or `const` branches), if it is one.
    pub(crate) fn enum_values(&self) -> Vec<&'a str> {
        let mut values = Vec::new();
        self.collect_enum_values(&mut values, 4);
        values
    }

    fn collect_enum_values(&self, values: &mut Vec<&'a str>, depth: usize) {
        if let Some(list) = self.node.get("enum").and_then(Value::as_array) {
            values.extend(list.iter().filter_map(Value::as_str));
        }
        if let Some(value) = self.node.get("const").and_then(Value::as_str) {
            values.push(value);
        }
        if depth == 0 {
            return;
        }
        for keyword in ["anyOf", "oneOf"] {
            for branch in self
                .node
                .get(keyword)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                self.at(branch).collect_enum_values(values, depth - 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn schema_declares_its_dialect_and_id() {
        let schema = json_schema();
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        assert_eq!(schema["$id"], SCHEMA_ID);
    }

    #[test]
    fn strict_parts_are_strict_and_armory_parts_are_open() {
        let schema = json_schema();
        let root = SchemaView::root(&schema);
        assert!(!root.is_strict());
        let webhook = root
            .property("webhooks")
            .and_then(|w| w.array())
            .and_then(|a| a.items())
            .and_then(|i| i.object())
            .unwrap();
        assert!(webhook.is_strict());
        assert!(webhook.property_names().contains(&"uriTemplate"));
        let wait_for = webhook.property("waitFor").unwrap();
        assert_eq!(
            wait_for.enum_values(),
            ["callback", "none", "poll", "workflowRun"]
        );
        let target = root
            .property("targets")
            .and_then(|t| t.object())
            .and_then(|t| t.property("anything"))
            .and_then(|t| t.object())
            .unwrap();
        assert!(!target.is_strict());
        let constraints = target
            .property("constraints")
            .and_then(|c| c.object())
            .unwrap();
        assert!(constraints.is_strict());
    }
}
