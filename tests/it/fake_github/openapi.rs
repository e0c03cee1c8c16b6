//! GitHub's own schemas for the calls hookgate makes, from the OpenAPI subset copied into
//! `tests/vectors/github-openapi-subset.json`.
//!
//! Each operation's request body schema and response schemas become JSON Schema validators whose
//! root holds the whole `components` section, so `$ref: #/components/schemas/...` resolves as in
//! the description. OpenAPI 3.0's `nullable: true` is rewritten to JSON Schema's `null` type
//! first; `format` (date-time, uri) is checked.

use std::collections::HashMap;

use jsonschema::Validator;
use serde_json::{Map, Value, json};

/// One operation of the description.
pub struct Operation {
    /// GitHub's name for it, such as `checks/create`.
    pub id: String,
    method: String,
    segments: Vec<String>,
    request: Option<Validator>,
    responses: HashMap<u16, Option<Validator>>,
}

/// The operations of the subset.
pub struct OpenApi {
    operations: Vec<Operation>,
}

impl OpenApi {
    /// Loads and compiles the copied subsets.
    pub fn load() -> Self {
        let mut operations = Vec::new();
        for name in [
            "github-openapi-subset.json",
            "github-openapi-actions-runs.json",
            "github-openapi-protection-rules.json",
        ] {
            operations.extend(Self::load_file(name));
        }
        OpenApi { operations }
    }

    /// The operations of `tests/vectors/NAME`.
    fn load_file(name: &str) -> Vec<Operation> {
        let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).expect("read the OpenAPI subset");
        let mut doc: Value = serde_json::from_str(&text).expect("the OpenAPI subset is JSON");
        nullable_to_json_schema(&mut doc);
        let components = doc["components"].clone();
        let compile = |schema: &Value| -> Validator {
            let root = json!({
                "components": components,
                "$defs": { "target": schema },
                "$ref": "#/$defs/target",
            });
            jsonschema::options()
                .should_validate_formats(true)
                .build(&root)
                .expect("compile an OpenAPI schema")
        };
        let mut operations = Vec::new();
        let paths = doc["paths"].as_object().expect("paths").clone();
        for (path, item) in paths {
            let Some(item) = item.as_object() else {
                continue;
            };
            for (method, op) in item {
                if !["get", "post", "patch", "put", "delete"].contains(&method.as_str()) {
                    continue;
                }
                let request = op
                    .pointer("/requestBody/content/application~1json/schema")
                    .map(&compile);
                let mut responses = HashMap::new();
                if let Some(map) = op["responses"].as_object() {
                    for (status, response) in map {
                        let Ok(status) = status.parse::<u16>() else {
                            continue;
                        };
                        let response = resolve_response(&doc, response);
                        let schema = response
                            .pointer("/content/application~1json/schema")
                            .map(&compile);
                        responses.insert(status, schema);
                    }
                }
                operations.push(Operation {
                    id: op["operationId"].as_str().unwrap_or_default().to_owned(),
                    method: method.to_uppercase(),
                    segments: path.split('/').map(str::to_owned).collect(),
                    request,
                    responses,
                });
            }
        }
        operations
    }

    /// The operation for `method path`, if the subset has it.
    pub fn find(&self, method: &str, path: &str) -> Option<&Operation> {
        let parts: Vec<&str> = path.split('/').collect();
        self.operations.iter().find(|op| {
            op.method == method
                && op.segments.len() == parts.len()
                && op
                    .segments
                    .iter()
                    .zip(&parts)
                    .all(|(template, part)| template.starts_with('{') || template == part)
        })
    }
}

impl Operation {
    /// What is wrong with a request body (none when it fits).
    pub fn check_request(&self, body: Option<&Value>) -> Vec<String> {
        match (&self.request, body) {
            (Some(validator), Some(body)) => errors(validator, body),
            (Some(_), None) => vec!["a JSON body is required".to_owned()],
            (None, Some(body)) if !body.is_null() => {
                vec!["this operation takes no body".to_owned()]
            }
            (None, _) => Vec::new(),
        }
    }

    /// What is wrong with a response (its status must be documented, its body must fit).
    pub fn check_response(&self, status: u16, body: Option<&Value>) -> Vec<String> {
        match self.responses.get(&status) {
            None => vec![format!("status {status} is not documented")],
            Some(Some(validator)) => match body {
                Some(body) => errors(validator, body),
                None => vec![format!("status {status} needs a body")],
            },
            Some(None) => match body {
                Some(_) => vec![format!("status {status} has no body")],
                None => Vec::new(),
            },
        }
    }
}

fn errors(validator: &Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// A response given as `$ref: #/components/responses/...`, resolved.
fn resolve_response<'a>(doc: &'a Value, response: &'a Value) -> &'a Value {
    match response.get("$ref").and_then(Value::as_str) {
        Some(reference) => doc
            .pointer(reference.trim_start_matches('#'))
            .unwrap_or(response),
        None => response,
    }
}

/// OpenAPI 3.0's `nullable: true` as JSON Schema: `null` joins the type and the enum.
fn nullable_to_json_schema(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.get("nullable") == Some(&Value::Bool(true)) {
                map.remove("nullable");
                if let Some(Value::String(kind)) = map.get("type").cloned() {
                    map.insert("type".into(), json!([kind, "null"]));
                    if let Some(Value::Array(values)) = map.get_mut("enum") {
                        values.push(Value::Null);
                    }
                } else {
                    let inner = Value::Object(std::mem::take(map));
                    let mut wrapped = Map::new();
                    wrapped.insert("anyOf".into(), json!([inner, {"type": "null"}]));
                    *map = wrapped;
                }
            }
            for child in map.values_mut() {
                nullable_to_json_schema(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(nullable_to_json_schema),
        _ => {}
    }
}

#[test]
fn the_subset_catches_a_bad_check_run() {
    let api = OpenApi::load();
    let op = api
        .find("POST", "/repos/o/r/check-runs")
        .expect("checks/create is in the subset");
    assert_eq!(op.id, "checks/create");
    assert!(
        op.check_request(Some(
            &json!({"name": "n", "head_sha": "abc", "status": "queued"})
        ))
        .is_empty()
    );
    // Completed without a conclusion, and a status GitHub does not know.
    assert!(
        !op.check_request(Some(
            &json!({"name": "n", "head_sha": "abc", "status": "completed"})
        ))
        .is_empty()
    );
    assert!(
        !op.check_request(Some(
            &json!({"name": "n", "head_sha": "abc", "status": "done"})
        ))
        .is_empty()
    );
    assert!(
        !op.check_request(Some(
            &json!({"name": "n", "head_sha": "abc", "started_at": "yesterday"})
        ))
        .is_empty()
    );
    assert!(!op.check_response(201, Some(&json!({"id": 1}))).is_empty());
    assert!(!op.check_response(418, None).is_empty());
}
