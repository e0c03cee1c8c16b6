//! Validation of a parsed deployment file: every problem of the file, each at its place.
//!
//! The passes run in order over the located tree and each one leaves the tree in a state the next
//! can work with, so one run finds every problem rather than the first:
//!
//! 1. unquoted `{{ ... }}` values that YAML read as nested maps are reported and turned back into
//!    the text that was meant;
//! 2. unknown keys inside the strict parts (driven by the JSON Schema) are reported, with a
//!    "did you mean", and removed;
//! 3. types are checked piece by piece (each webhook, each `runWebhook`, each field of the lenient
//!    Armory parts), so one wrong value does not hide the next;
//! 4. references and cross-field rules are checked: webhook names, `runWebhook` names,
//!    `dependsOn` targets and cycles, strategy names, wait modes and their settings, GitHub's
//!    limits on dispatches, JSONPath expressions.
//!
//! Settings that contradict the wait mode (`poll:` on a webhook that waits for a callback,
//! `callback:` on one that polls, statuses without a status JSONPath) are warnings: the file
//! still works, the settings are ignored and the warning says so. Settings that make a webhook
//! impossible to run (`disableCallback: true` with `waitFor: callback`, `waitFor: workflowRun`
//! without `workflowDispatch`, HMAC without a secret) are errors.

use std::collections::{BTreeSet, HashMap};

use indexmap::IndexMap;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::diagnostic::{Diagnostic, Diagnostics, LineIndex};
use crate::located::{Node, NodeValue, PathSegment, Span};
use crate::model::{
    CallbackAuthMode, DeploymentFile, RunWebhook, StatusUrlResolution, WaitFor, Webhook,
};
use crate::schema::SchemaView;

/// How long a job on a GitHub-hosted runner may run.
const HOSTED_JOB_LIMIT: std::time::Duration = std::time::Duration::from_secs(6 * 3600);
/// How long a job's `GITHUB_TOKEN` lasts at most.
const TOKEN_LIMIT: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// GitHub's limit on a `repository_dispatch` event type.
pub const MAX_EVENT_TYPE_CHARS: usize = 100;
/// GitHub's limit on the top-level keys of a `repository_dispatch` client payload.
pub const MAX_CLIENT_PAYLOAD_KEYS: usize = 10;
/// GitHub's limit on the inputs of a `workflow_dispatch`.
pub const MAX_WORKFLOW_INPUTS: usize = 25;

/// Runs every check over `tree` (which it may repair to go on) and returns the model when the
/// file has no errors.
pub(crate) fn check(tree: &mut Node, diags: &mut Diagnostics) -> Option<DeploymentFile> {
    if !matches!(tree.value, NodeValue::Map(_)) {
        let message = if tree.value == NodeValue::Null {
            "the deployment file is empty"
        } else {
            "a deployment file is a map of keys such as `targets`, `strategies` and `webhooks`"
        };
        diags.push(Diagnostic::error(Some(tree.span), message).with_help(
            "start from one of the files under `examples/`, or run `hookgate schema` for the format",
        ));
        return None;
    }
    let source = diags.source.clone();
    let lines = LineIndex::new(&source);
    repair_unquoted_templates(tree, &lines, diags);
    let original = tree.clone();
    let schema = crate::schema::shared();
    let mut unknown = Vec::new();
    find_unknown_keys(
        tree,
        SchemaView::root(schema),
        &mut Vec::new(),
        &mut unknown,
    );
    let mut pruned = Vec::new();
    for (path, allowed) in &unknown {
        report_unknown_key(&original, path, allowed, diags);
        remove(tree, path);
        pruned.push(path[..path.len() - 1].to_vec());
    }

    let mut checker = Checker {
        tree,
        lines: &lines,
        schema,
        diags,
        webhooks: Vec::new(),
        pruned,
    };
    checker.check_types();
    checker.check_step_shapes(&original);
    checker.check_references();
    checker.check_webhooks();
    if checker.diags.has_errors() {
        return None;
    }
    match serde_path_to_error::deserialize::<_, DeploymentFile>(tree.to_json()) {
        Ok(file) => Some(file),
        Err(err) => {
            // The piecewise checks should have found this; report it at its place anyway.
            let path = to_path(err.path());
            let message = humanize(&path, &err.inner().to_string());
            diags.push(Diagnostic::error(Some(span_of(tree, &path)), message));
            None
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Pass 1: `key: {{ x }}` without quotes.

/// YAML reads `value: {{context.environment}}` as a map inside a map. Report each such value and
/// put back the text that was meant, so the other passes see what the author wanted.
fn repair_unquoted_templates(node: &mut Node, lines: &LineIndex<'_>, diags: &mut Diagnostics) {
    if let NodeValue::Map(_) = node.value
        && let Some(raw) = source_from(lines, node.span)
        && raw.starts_with("{{")
    {
        let raw = raw.to_owned();
        node.span.len = raw.chars().count();
        diags.push(unquoted_template(node.span, &raw));
        node.value = NodeValue::String(raw);
        return;
    }
    match &mut node.value {
        NodeValue::Seq(items) => items
            .iter_mut()
            .for_each(|n| repair_unquoted_templates(n, lines, diags)),
        NodeValue::Map(entries) => entries
            .iter_mut()
            .for_each(|(_, n)| repair_unquoted_templates(n, lines, diags)),
        _ => {}
    }
}

/// The rest of the line from `span`, without a trailing comment.
fn source_from<'a>(lines: &LineIndex<'a>, span: Span) -> Option<&'a str> {
    let line = lines.line(span.line)?;
    let start = line
        .char_indices()
        .nth(span.col.checked_sub(1)?)
        .map(|(i, _)| i)?;
    let rest = &line[start..];
    let rest = match rest.find(" #") {
        Some(comment) => &rest[..comment],
        None => rest,
    };
    Some(rest.trim_end())
}

/// The error for an unquoted value starting with `{{`, showing the quoted form.
pub(crate) fn unquoted_template(span: Span, raw: &str) -> Diagnostic {
    Diagnostic::error(
        Some(span),
        "a value that starts with `{{` must be quoted: YAML reads an unquoted `{` as the start of a map",
    )
    .with_help(format!("write it as {}", quote(raw)))
}

/// `raw` as a YAML string: double quotes, or single quotes when it holds `"` or `\`.
pub(crate) fn quote(raw: &str) -> String {
    if raw.contains('"') || raw.contains('\\') {
        format!("'{}'", raw.replace('\'', "''"))
    } else {
        format!("\"{raw}\"")
    }
}

// ---------------------------------------------------------------------------------------------
// Pass 2: unknown keys in the strict parts.

fn find_unknown_keys(
    node: &Node,
    schema: SchemaView<'_>,
    path: &mut Vec<PathSegment>,
    found: &mut Vec<(Vec<PathSegment>, Vec<String>)>,
) {
    match &node.value {
        NodeValue::Map(entries) => {
            let Some(object) = schema.object() else {
                return;
            };
            for (key, child) in entries {
                path.push(PathSegment::Key(key.text.clone()));
                match object.property(&key.text) {
                    Some(child_schema) => find_unknown_keys(child, child_schema, path, found),
                    None if object.is_strict() => found.push((
                        path.clone(),
                        object
                            .property_names()
                            .into_iter()
                            .map(str::to_owned)
                            .collect(),
                    )),
                    None => {}
                }
                path.pop();
            }
        }
        NodeValue::Seq(items) => {
            let Some(item_schema) = schema.array().and_then(|a| a.items()) else {
                return;
            };
            for (index, child) in items.iter().enumerate() {
                path.push(PathSegment::Index(index));
                find_unknown_keys(child, item_schema, path, found);
                path.pop();
            }
        }
        _ => {}
    }
}

fn report_unknown_key(
    tree: &Node,
    path: &[PathSegment],
    allowed: &[String],
    diags: &mut Diagnostics,
) {
    let Some(key) = tree.key_at(path) else {
        return;
    };
    let place = describe(tree, &path[..path.len() - 1]);
    let help = match closest(&key.text, allowed.iter().map(String::as_str)) {
        Some(best) => format!("did you mean `{best}`?"),
        None => format!("the keys allowed here are {}", backticked(allowed)),
    };
    diags.push(
        Diagnostic::error(
            Some(key.span),
            format!("unknown key `{}` in {place}", key.text),
        )
        .with_help(help),
    );
}

fn remove(tree: &mut Node, path: &[PathSegment]) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    let Some(parent) = get_mut(tree, parent) else {
        return;
    };
    match (&mut parent.value, last) {
        (NodeValue::Map(entries), PathSegment::Key(k)) => entries.retain(|(key, _)| &key.text != k),
        (NodeValue::Seq(items), PathSegment::Index(i)) if *i < items.len() => {
            // Keep indexes stable for later paths: replace rather than shift.
            items[*i].value = NodeValue::Null;
        }
        _ => {}
    }
}

fn get_mut<'a>(node: &'a mut Node, path: &[PathSegment]) -> Option<&'a mut Node> {
    let mut node = node;
    for segment in path {
        node = match (segment, &mut node.value) {
            (PathSegment::Key(k), NodeValue::Map(entries)) => {
                &mut entries.iter_mut().find(|(key, _)| &key.text == k)?.1
            }
            (PathSegment::Index(i), NodeValue::Seq(items)) => items.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(node)
}

// ---------------------------------------------------------------------------------------------
// Passes 3 and 4.

struct Checker<'a> {
    tree: &'a Node,
    lines: &'a LineIndex<'a>,
    schema: &'a Value,
    diags: &'a mut Diagnostics,
    /// The webhooks that deserialized, with their index under `webhooks`.
    webhooks: Vec<(usize, Webhook)>,
    /// Maps an unknown key was removed from: a key missing there is most likely the misspelt
    /// one, already reported.
    pruned: Vec<Vec<PathSegment>>,
}

fn key(k: &str) -> PathSegment {
    PathSegment::Key(k.to_owned())
}

fn join(path: &[PathSegment], more: &[PathSegment]) -> Vec<PathSegment> {
    path.iter().chain(more).cloned().collect()
}

impl Checker<'_> {
    fn error(&mut self, span: Span, message: impl Into<String>, help: impl Into<String>) {
        self.diags
            .push(Diagnostic::error(Some(span), message).with_help(help));
    }

    fn warning(&mut self, span: Span, message: impl Into<String>, help: impl Into<String>) {
        self.diags
            .push(Diagnostic::warning(Some(span), message).with_help(help));
    }

    /// Deserializes the node at `path` as `T`, reporting every error it can find in it: after
    /// each error the offending value is removed and the piece is tried again.
    fn typed<T: DeserializeOwned>(&mut self, path: &[PathSegment]) -> Option<T> {
        let node = self.tree.get(path)?;
        let mut json = node.to_json();
        let mut failed = false;
        let mut removed: Vec<Vec<PathSegment>> = Vec::new();
        for _ in 0..32 {
            match serde_path_to_error::deserialize::<_, T>(&json) {
                Ok(value) => return (!failed).then_some(value),
                Err(err) => {
                    failed = true;
                    let inner = to_path(err.path());
                    let full = join(path, &inner);
                    let text = err.inner().to_string();
                    if let Some(field) = missing_field(&text) {
                        // Not a second report for a value removed above or a misspelt key.
                        let field_path = join(&inner, &[key(field)]);
                        if !removed.contains(&field_path) && !self.pruned.contains(&full) {
                            let span = self
                                .tree
                                .key_at(&full)
                                .map(|k| k.span)
                                .unwrap_or_else(|| span_of(self.tree, &full));
                            self.error(
                                span,
                                format!("missing `{field}` in {}", describe(self.tree, &full)),
                                format!("add `{field}:` here"),
                            );
                        }
                        return None;
                    }
                    let mut diagnostic =
                        Diagnostic::error(Some(span_of(self.tree, &full)), humanize(&full, &text));
                    diagnostic.help = self.help_for(&full, &text);
                    self.diags.push(diagnostic);
                    if inner.is_empty() || !remove_json(&mut json, &inner) {
                        return None;
                    }
                    removed.push(inner);
                }
            }
        }
        None
    }

    /// A hint for a deserialization error: the closest enum value, or how to quote.
    fn help_for(&self, path: &[PathSegment], message: &str) -> Option<String> {
        if let Some(rest) = message.strip_prefix("unknown variant `") {
            let given = rest.split('`').next().unwrap_or_default();
            let allowed = self.enum_values_at(path);
            let allowed: Vec<&str> = if allowed.is_empty() {
                rest.split('`').skip(2).step_by(2).collect()
            } else {
                allowed
            };
            return Some(match closest(given, allowed.iter().copied()) {
                Some(best) => format!("did you mean `{best}`?"),
                None => format!("use one of {}", backticked(&allowed)),
            });
        }
        if message.contains("expected a string")
            && let Some(node) = self.tree.get(path)
            && matches!(node.value, NodeValue::Number(_) | NodeValue::Bool(_))
            && let Some(raw) = source_from(self.lines, node.span)
        {
            return Some(format!("quote it to make it text: {}", quote(raw)));
        }
        None
    }

    fn enum_values_at(&self, path: &[PathSegment]) -> Vec<&str> {
        let mut view = SchemaView::root(self.schema);
        for segment in path {
            let next = match segment {
                PathSegment::Key(k) => view.object().and_then(|o| o.property(k)),
                PathSegment::Index(_) => view.array().and_then(|a| a.items()),
            };
            match next {
                Some(next) => view = next,
                None => return Vec::new(),
            }
        }
        view.enum_values()
    }

    /// Requires the node at `path`, when present, to be a map that is not empty.
    fn filled_map_at(&mut self, path: &[PathSegment], what: &str, help: &str) -> bool {
        if let Some(node) = self.tree.get(path)
            && node.value == NodeValue::Null
        {
            let span = node.span;
            self.error(span, format!("{what} is empty"), help.to_owned());
            return false;
        }
        self.map_at(path, help)
    }

    /// Requires the node at `path`, when present and not null, to be a map.
    fn map_at(&mut self, path: &[PathSegment], what: &str) -> bool {
        self.shape_at(path, what, |v| matches!(v, NodeValue::Map(_)), "a map")
    }

    /// Requires the node at `path`, when present and not null, to be a list.
    fn list_at(&mut self, path: &[PathSegment], what: &str) -> bool {
        self.shape_at(path, what, |v| matches!(v, NodeValue::Seq(_)), "a list")
    }

    fn shape_at(
        &mut self,
        path: &[PathSegment],
        what: &str,
        is: impl Fn(&NodeValue) -> bool,
        shape: &str,
    ) -> bool {
        let Some(node) = self.tree.get(path) else {
            return false;
        };
        if node.value == NodeValue::Null {
            return false;
        }
        if is(&node.value) {
            return true;
        }
        let span = node.span;
        let found = found_kind(&node.value);
        self.error(
            span,
            format!("`{}` must be {shape}, found {found}", last_key(path)),
            what.to_owned(),
        );
        false
    }

    fn check_types(&mut self) {
        let tree = self.tree;
        for field in ["kind", "application"] {
            self.typed::<Option<String>>(&[key(field)]);
        }
        if self.map_at(
            &[key("targets")],
            "write each target as `name:` followed by its settings",
        ) {
            for (name, _) in tree.field("targets").map(Node::entries).unwrap_or_default() {
                let path = [key("targets"), key(&name.text)];
                if !self.filled_map_at(
                    &path,
                    &format!("target `{}`", name.text),
                    "a target holds `account`, `namespace`, `strategy` and `constraints`",
                ) {
                    continue;
                }
                for field in ["account", "namespace", "strategy"] {
                    self.typed::<Option<String>>(&join(&path, &[key(field)]));
                }
                let constraints = join(&path, &[key("constraints")]);
                if self.map_at(
                    &constraints,
                    "`constraints` holds `dependsOn`, `beforeDeployment` and `afterDeployment`",
                ) {
                    self.typed::<Vec<String>>(&join(&constraints, &[key("dependsOn")]));
                    for phase in ["beforeDeployment", "afterDeployment"] {
                        self.steps(&join(&constraints, &[key(phase)]));
                    }
                }
            }
        }
        if self.map_at(
            &[key("strategies")],
            "write each strategy as `name:` followed by `canary:` or `blueGreen:`",
        ) {
            for (name, _) in tree
                .field("strategies")
                .map(Node::entries)
                .unwrap_or_default()
            {
                let path = [key("strategies"), key(&name.text)];
                if !self.filled_map_at(
                    &path,
                    &format!("strategy `{}`", name.text),
                    "a strategy holds `canary:` or `blueGreen:`",
                ) {
                    continue;
                }
                let canary = join(&path, &[key("canary")]);
                if self.map_at(&canary, "a canary strategy holds `steps:`") {
                    self.steps(&join(&canary, &[key("steps")]));
                }
                let blue_green = join(&path, &[key("blueGreen")]);
                if self.map_at(&blue_green, "a blue/green strategy holds `activeService`, `previewService` and `redirectTrafficAfter`") {
                    for field in ["activeService", "previewService"] {
                        self.typed::<Option<String>>(&join(&blue_green, &[key(field)]));
                    }
                    for field in ["redirectTrafficAfter", "shutDownOldVersionAfter"] {
                        self.steps(&join(&blue_green, &[key(field)]));
                    }
                }
            }
        }
        if self.list_at(
            &[key("webhooks")],
            "write each webhook as a list item: `- name: ...`",
        ) {
            for index in 0..tree.field("webhooks").map(|w| w.items().len()).unwrap_or(0) {
                let path = [key("webhooks"), PathSegment::Index(index)];
                if !self.filled_map_at(
                    &path,
                    &format!("webhook number {}", index + 1),
                    "a webhook holds at least `name` and `uriTemplate`",
                ) {
                    continue;
                }
                if let Some(webhook) = self.typed::<Webhook>(&path) {
                    self.webhooks.push((index, webhook));
                }
            }
        }
    }

    /// A list of steps: `beforeDeployment`, canary `steps`, `redirectTrafficAfter`, ...
    fn steps(&mut self, path: &[PathSegment]) {
        if !self.list_at(
            path,
            "write each step as a list item, such as `- runWebhook: ...`",
        ) {
            return;
        }
        let count = self.tree.get(path).map(|n| n.items().len()).unwrap_or(0);
        for index in 0..count {
            let step = join(path, &[PathSegment::Index(index)]);
            if !self.map_at(&step, "a step is a map such as `runWebhook: {name: ...}`") {
                continue;
            }
            self.typed::<RunWebhook>(&join(&step, &[key("runWebhook")]));
            let pause = join(&step, &[key("pause")]);
            if self.map_at(&pause, "write `pause: {duration: 5, unit: minutes}`") {
                self.typed::<Option<u64>>(&join(&pause, &[key("duration")]));
                self.typed::<Option<crate::model::PauseUnit>>(&join(&pause, &[key("unit")]));
                self.typed::<Option<bool>>(&join(&pause, &[key("untilApproved")]));
            }
        }
    }

    /// `beforeDeployment`/`afterDeployment` steps hold exactly one key. Checked on the tree as
    /// written, so a misspelt key counts (and is reported once, as unknown).
    fn check_step_shapes(&mut self, original: &Node) {
        for (target, node) in original
            .field("targets")
            .map(Node::entries)
            .unwrap_or_default()
        {
            let Some(constraints) = node.field("constraints") else {
                continue;
            };
            for phase in ["beforeDeployment", "afterDeployment"] {
                for step in constraints
                    .field(phase)
                    .map(Node::items)
                    .unwrap_or_default()
                {
                    let NodeValue::Map(entries) = &step.value else {
                        continue;
                    };
                    match entries.as_slice() {
                        [] => self.error(
                            step.span,
                            format!("an empty step in `{phase}` of target `{}`", target.text),
                            "give the step one of `runWebhook`, `pause` or `analysis`, or remove it",
                        ),
                        [_] => {}
                        [first, second, ..] => self.error(
                            second.0.span,
                            format!(
                                "a step in `{phase}` of target `{}` holds both `{}` and `{}`",
                                target.text, first.0.text, second.0.text
                            ),
                            "a step does one thing: put each in its own list item",
                        ),
                    }
                }
            }
        }
    }

    fn check_references(&mut self) {
        let tree = self.tree;
        // Webhook names, and duplicates.
        let mut names: IndexMap<&str, Span> = IndexMap::new();
        for item in tree.field("webhooks").map(Node::items).unwrap_or_default() {
            let Some(name_node) = item.field("name") else {
                continue;
            };
            let Some(name) = name_node.as_str() else {
                continue;
            };
            if let Some(first) = names.get(name) {
                let line = first.line;
                self.error(
                    name_node.span,
                    format!("two webhooks are named `{name}` (the first on line {line})"),
                    "give each webhook its own name: `runWebhook` finds webhooks by name",
                );
            } else {
                names.insert(name, name_node.span);
            }
        }
        let webhook_names: Vec<&str> = names.keys().copied().collect();
        for (path, name_node) in run_webhook_names(tree) {
            let Some(name) = name_node.as_str() else {
                continue;
            };
            if !names.contains_key(name) {
                let help = not_found_help(name, &webhook_names, "webhook", "under `webhooks:`");
                let place = describe(tree, &path);
                self.error(
                    name_node.span,
                    format!("`runWebhook` in {place} names `{name}`, but no webhook has that name"),
                    help,
                );
            }
        }

        // Targets: strategies and dependencies.
        let targets: Vec<&str> = tree
            .field("targets")
            .map(Node::entries)
            .unwrap_or_default()
            .iter()
            .map(|(k, _)| k.text.as_str())
            .collect();
        let strategies: Vec<&str> = tree
            .field("strategies")
            .map(Node::entries)
            .unwrap_or_default()
            .iter()
            .map(|(k, _)| k.text.as_str())
            .collect();
        let mut edges: IndexMap<&str, Vec<(&str, Span)>> = IndexMap::new();
        for (target, node) in tree.field("targets").map(Node::entries).unwrap_or_default() {
            if let Some(strategy) = node.field("strategy")
                && let Some(name) = strategy.as_str()
                && !strategies.contains(&name)
            {
                let help = not_found_help(name, &strategies, "strategy", "under `strategies:`");
                self.error(
                    strategy.span,
                    format!(
                        "target `{}` uses strategy `{name}`, which is not under `strategies`",
                        target.text
                    ),
                    help,
                );
            }
            let depends_on = node
                .field("constraints")
                .and_then(|c| c.field("dependsOn"))
                .map(Node::items)
                .unwrap_or_default();
            let mut out = Vec::new();
            for dependency in depends_on {
                let Some(name) = dependency.as_str() else {
                    continue;
                };
                if targets.contains(&name) {
                    out.push((name, dependency.span));
                } else {
                    let help = not_found_help(name, &targets, "target", "under `targets:`");
                    self.error(
                        dependency.span,
                        format!(
                            "target `{}` depends on `{name}`, which is not a target",
                            target.text
                        ),
                        help,
                    );
                }
            }
            edges.insert(target.text.as_str(), out);
        }
        for (cycle, span) in find_cycles(&edges) {
            self.error(
                span,
                format!("`dependsOn` makes a cycle: {}", cycle.join(" -> ")),
                "none of these targets could ever be deployed; remove one of the dependencies",
            );
        }
    }

    /// A warning for settings of a wait mode the webhook does not use.
    fn ignored_section(
        &mut self,
        span: Span,
        name: &str,
        section: &str,
        wait: WaitFor,
        help: &str,
    ) {
        self.warning(
            span,
            format!(
                "`{section}` of webhook `{name}` is ignored: it waits for `{}`",
                wait.as_str()
            ),
            help,
        );
    }

    fn check_webhooks(&mut self) {
        let webhooks = std::mem::take(&mut self.webhooks);
        for (index, webhook) in &webhooks {
            self.check_webhook(*index, webhook);
        }
        self.webhooks = webhooks;
    }

    fn check_webhook(&mut self, index: usize, webhook: &Webhook) {
        let tree = self.tree;
        let base = [key("webhooks"), PathSegment::Index(index)];
        let at = |more: &[&str]| -> Span {
            let path: Vec<PathSegment> = base
                .iter()
                .cloned()
                .chain(more.iter().map(|k| key(k)))
                .collect();
            span_of(tree, &path)
        };
        let key_at = |more: &[&str]| -> Span {
            let path: Vec<PathSegment> = base
                .iter()
                .cloned()
                .chain(more.iter().map(|k| key(k)))
                .collect();
            tree.key_at(&path)
                .map(|k| k.span)
                .unwrap_or_else(|| span_of(tree, &path))
        };
        let name = &webhook.name;

        if let Some(agent) = webhook.remote_network_agent() {
            self.warning(
                at(&["networkMode"]),
                format!("webhook `{name}` uses `networkMode: remoteNetworkAgent`{agent}: hookgate calls the URL directly from the machine it runs on, so that machine must reach it"),
                "run the job on a runner inside that network (a self-hosted runner plays the Remote Network Agent's part), or write `networkMode: direct`",
            );
        } else if webhook.agent_identifier.is_some() {
            self.warning(
                key_at(&["agentIdentifier"]),
                format!("`agentIdentifier` of webhook `{name}` is ignored: hookgate calls the URL directly from the runner"),
                "remove `agentIdentifier`",
            );
        }

        if let Some(timeout) = &webhook.timeout
            && timeout.0 > TOKEN_LIMIT
        {
            self.warning(
                at(&["timeout"]),
                format!("`timeout` of webhook `{name}` is longer than 24 hours: a job's GITHUB_TOKEN expires 24 hours after the job starts, and a self-hosted job waits no longer than 5 days"),
                "use a GitHub App for the token (hookgate renews its installation tokens), or split the wait: dispatch and end the job, and let the callback start a second workflow",
            );
        } else if let Some(timeout) = &webhook.timeout
            && timeout.0 > HOSTED_JOB_LIMIT
        {
            self.warning(
                at(&["timeout"]),
                format!("`timeout` of webhook `{name}` is longer than 6 hours: a job on a GitHub-hosted runner is stopped after 6 hours, and its GITHUB_TOKEN ends with the job"),
                "on hosted runners keep it under 6h; wait longer on a self-hosted runner (a job may run 5 days; use a GitHub App, whose token hookgate renews), or split the wait: dispatch and end the job, and let the callback start a second workflow",
            );
        }
        let zero = |d: &Option<crate::model::DurationSpec>| d.is_some_and(|d| d.0.is_zero());
        if zero(&webhook.timeout) {
            self.error(
                at(&["timeout"]),
                format!("`timeout` of webhook `{name}` is 0: the step would time out at once"),
                "use a duration such as `30m`, or leave `timeout` out for 24h",
            );
        }
        if webhook.poll.as_ref().is_some_and(|p| zero(&p.interval)) {
            self.error(
                at(&["poll", "interval"]),
                format!("`interval` of webhook `{name}` is 0: it would poll without a pause"),
                "use a duration such as `15s`, or leave `interval` out for Spinnaker's default",
            );
        }

        // What the webhook calls.
        let callees: Vec<&str> = [
            ("uriTemplate", webhook.uri_template.is_some()),
            ("repositoryDispatch", webhook.repository_dispatch.is_some()),
            ("workflowDispatch", webhook.workflow_dispatch.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect();
        match callees.as_slice() {
            [] => self.error(
                at(&["name"]),
                format!("webhook `{name}` has nothing to call"),
                "add `uriTemplate: https://...`, or `repositoryDispatch:` / `workflowDispatch:` to start a GitHub workflow",
            ),
            [_] => {}
            [first, second, ..] => self.error(
                key_at(&[second]),
                format!("webhook `{name}` has both `{first}` and `{second}`"),
                "a webhook calls one thing: keep one of them, or split it into two webhooks",
            ),
        }

        // How the result is known.
        let wait = match (webhook.wait_for, webhook.disable_callback) {
            (Some(WaitFor::Callback), Some(true)) => {
                self.error(
                    at(&["disableCallback"]),
                    format!("webhook `{name}` has `disableCallback: true` but `waitFor: callback`"),
                    "remove `disableCallback`, or use `waitFor: none` (2xx is success) or `waitFor: poll`",
                );
                WaitFor::Callback
            }
            _ => webhook.wait_mode(),
        };
        if wait == WaitFor::WorkflowRun && webhook.workflow_dispatch.is_none() {
            self.error(
                at(&["waitFor"]),
                format!("webhook `{name}` waits for `workflowRun` but starts no workflow"),
                "add `workflowDispatch: {workflow: tests.yml, ref: main}`, or choose another `waitFor`",
            );
        }
        let dispatches =
            webhook.repository_dispatch.is_some() || webhook.workflow_dispatch.is_some();
        if wait == WaitFor::Poll && dispatches {
            self.error(
                at(&["waitFor"]),
                format!("webhook `{name}` polls, but a GitHub dispatch answers with no status URL"),
                "use `waitFor: workflowRun` with `workflowDispatch` (follows the run it starts), or `waitFor: callback`",
            );
        }

        if let Some(poll) = &webhook.poll {
            if wait != WaitFor::Poll {
                self.ignored_section(
                    key_at(&["poll"]),
                    name,
                    "poll",
                    wait,
                    "add `waitFor: poll` to poll, or remove `poll`",
                );
            }
            if poll.status_url_resolution == StatusUrlResolution::WebhookResponse
                && poll.status_url_json_path.is_none()
            {
                self.error(
                    at(&["poll", "statusUrlResolution"]),
                    format!(
                        "webhook `{name}` takes its status URL from the response but says not where"
                    ),
                    "add `statusUrlJsonPath`, such as `statusUrlJsonPath: $.links.status`",
                );
            }
            if poll.status_url_resolution != StatusUrlResolution::WebhookResponse
                && poll.status_url_json_path.is_some()
            {
                self.warning(
                    key_at(&["poll", "statusUrlJsonPath"]),
                    format!("`statusUrlJsonPath` of webhook `{name}` is ignored without `statusUrlResolution: webhookResponse`"),
                    "add `statusUrlResolution: webhookResponse`, or remove `statusUrlJsonPath`",
                );
            }
            if poll.status_json_path.is_none() {
                for (field, list) in [
                    ("successStatuses", &poll.success_statuses),
                    ("canceledStatuses", &poll.canceled_statuses),
                    ("terminalStatuses", &poll.terminal_statuses),
                ] {
                    if !list.is_empty() {
                        self.warning(
                            key_at(&["poll", field]),
                            format!("`{field}` of webhook `{name}` is ignored without `statusJsonPath`: a 2xx answer is success"),
                            "add `statusJsonPath`, such as `statusJsonPath: $.status`",
                        );
                    }
                }
            }
            for (output, expr) in &poll.outputs {
                if !crate::model::is_output_name(output) {
                    self.error(
                        key_at(&["poll", "outputs", output.as_str()]),
                        format!("output `{output}` of webhook `{name}` is not a name GitHub takes for an output"),
                        "a name is a letter or `_`, then letters, digits, `_` or `-`, at most 100 bytes",
                    );
                }
                if let Err(err) = serde_json_path::JsonPath::parse(expr) {
                    self.error(
                        at(&["poll", "outputs", output.as_str()]),
                        format!("output `{output}` of webhook `{name}` is not a JSONPath expression: {err}"),
                        "write an RFC 9535 JSONPath, such as `$.report.url`",
                    );
                }
            }
            for (field, value) in [
                ("statusUrlJsonPath", &poll.status_url_json_path),
                ("statusJsonPath", &poll.status_json_path),
                ("progressJsonPath", &poll.progress_json_path),
            ] {
                if let Some(expr) = value
                    && let Err(err) = serde_json_path::JsonPath::parse(expr)
                {
                    let help = if expr.starts_with('$') {
                        "write an RFC 9535 JSONPath, such as `$.status` or `$.items[0].state`"
                            .to_owned()
                    } else {
                        format!(
                            "a JSONPath starts with `$`: write `$.{}`",
                            expr.trim_start_matches('.')
                        )
                    };
                    self.error(
                        at(&["poll", field]),
                        format!(
                            "`{field}` of webhook `{name}` is not a JSONPath expression: {err}"
                        ),
                        help,
                    );
                }
            }
        }

        if let Some(callback) = &webhook.callback {
            if wait != WaitFor::Callback {
                self.ignored_section(
                    key_at(&["callback"]),
                    name,
                    "callback",
                    wait,
                    "remove `callback`, or wait for a callback (`waitFor: callback`)",
                );
            }
            match (callback.auth, &callback.secret) {
                (CallbackAuthMode::Hmac, None) => self.error(
                    at(&["callback", "auth"]),
                    format!("webhook `{name}` verifies callbacks with HMAC but has no `secret`"),
                    "add `secret: \"{{ secrets.callback_secret }}\"` under `callback`",
                ),
                (CallbackAuthMode::Bearer, Some(_)) => self.warning(
                    key_at(&["callback", "secret"]),
                    format!("`secret` of webhook `{name}` is ignored with bearer authentication"),
                    "add `auth: hmac` to sign callbacks with it, or remove `secret`",
                ),
                _ => {}
            }
        }

        if let Some(dispatch) = &webhook.repository_dispatch {
            let chars = dispatch.event_type.chars().count();
            if chars == 0 || chars > MAX_EVENT_TYPE_CHARS {
                self.error(
                    at(&["repositoryDispatch", "eventType"]),
                    format!("`eventType` of webhook `{name}` has {chars} characters; GitHub takes 1 to {MAX_EVENT_TYPE_CHARS}"),
                    "use a short event type such as `integration-tests`",
                );
            }
            let keys = dispatch.client_payload.len();
            if keys > MAX_CLIENT_PAYLOAD_KEYS {
                self.error(
                    key_at(&["repositoryDispatch", "clientPayload"]),
                    format!("`clientPayload` of webhook `{name}` has {keys} top-level keys; GitHub takes at most {MAX_CLIENT_PAYLOAD_KEYS}"),
                    "group related values under one key, such as `deployment: {environment: ..., version: ...}`",
                );
            }
        }
        if let Some(dispatch) = &webhook.workflow_dispatch {
            let inputs = dispatch.inputs.len();
            if inputs > MAX_WORKFLOW_INPUTS {
                self.error(
                    key_at(&["workflowDispatch", "inputs"]),
                    format!("`inputs` of webhook `{name}` has {inputs} entries; GitHub takes at most {MAX_WORKFLOW_INPUTS}"),
                    "pass related values as one JSON-encoded input",
                );
            }
        }

        let call_list = if webhook.webhook_retry_status_codes.is_some() {
            "webhookRetryStatusCodes"
        } else {
            "retryStatusCodes"
        };
        // A status the call retries cannot also end it at once; the polls' list is their own.
        let mut codes_seen: HashMap<u16, &str> = HashMap::new();
        for (field, codes) in [
            ("retryStatusCodes", webhook.retry_status_codes.as_slice()),
            (
                "webhookRetryStatusCodes",
                webhook.webhook_retry_status_codes.as_deref().unwrap_or(&[]),
            ),
            (
                "failFastStatusCodes",
                webhook.fail_fast_status_codes.as_deref().unwrap_or(&[]),
            ),
        ] {
            for code in codes {
                if !(100..=599).contains(code) {
                    self.error(
                        key_at(&[field]),
                        format!("`{field}` of webhook `{name}` lists {code}, which is not an HTTP status code"),
                        "HTTP status codes run from 100 to 599",
                    );
                    continue;
                }
                if field != call_list && field != "failFastStatusCodes" {
                    continue;
                }
                if let Some(other) = codes_seen.insert(*code, field)
                    && other != field
                {
                    self.error(
                        key_at(&[field]),
                        format!("webhook `{name}` lists {code} in both `{other}` and `{field}`"),
                        "a status code is either retried or ends the step at once: keep it in one list",
                    );
                }
            }
        }
    }
}

/// Every `runWebhook.name` node of the file, with the path of its step.
fn run_webhook_names(tree: &Node) -> Vec<(Vec<PathSegment>, &Node)> {
    let mut lists: Vec<Vec<PathSegment>> = Vec::new();
    for (target, node) in tree.field("targets").map(Node::entries).unwrap_or_default() {
        if node.field("constraints").is_some() {
            for phase in ["beforeDeployment", "afterDeployment"] {
                lists.push(vec![
                    key("targets"),
                    key(&target.text),
                    key("constraints"),
                    key(phase),
                ]);
            }
        }
    }
    for (strategy, _) in tree
        .field("strategies")
        .map(Node::entries)
        .unwrap_or_default()
    {
        let base = [key("strategies"), key(&strategy.text)];
        lists.push(join(&base, &[key("canary"), key("steps")]));
        lists.push(join(
            &base,
            &[key("blueGreen"), key("redirectTrafficAfter")],
        ));
        lists.push(join(
            &base,
            &[key("blueGreen"), key("shutDownOldVersionAfter")],
        ));
    }
    let mut found = Vec::new();
    for list in lists {
        let Some(node) = tree.get(&list) else {
            continue;
        };
        for (index, _) in node.items().iter().enumerate() {
            let step = join(&list, &[PathSegment::Index(index)]);
            if let Some(name) = tree.get(&join(&step, &[key("runWebhook"), key("name")])) {
                found.push((step, name));
            }
        }
    }
    found
}

/// Each cycle of the dependency graph once, as names from the first back to itself, with the
/// place of the `dependsOn` entry that closes it.
fn find_cycles<'a>(edges: &IndexMap<&'a str, Vec<(&'a str, Span)>>) -> Vec<(Vec<&'a str>, Span)> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut marks: HashMap<&str, Mark> = edges.keys().map(|k| (*k, Mark::New)).collect();
    let mut seen: BTreeSet<Vec<&str>> = BTreeSet::new();
    let mut cycles = Vec::new();
    for start in edges.keys() {
        if marks.get(start) != Some(&Mark::New) {
            continue;
        }
        // Iterative depth-first search: (node, index of the next edge to follow).
        let mut stack: Vec<(&str, usize)> = vec![(start, 0)];
        marks.insert(start, Mark::Open);
        while let Some((node, next)) = stack.last().copied() {
            let out = edges.get(node).map(Vec::as_slice).unwrap_or_default();
            let Some((to, span)) = out.get(next).copied() else {
                marks.insert(node, Mark::Done);
                stack.pop();
                continue;
            };
            if let Some(top) = stack.last_mut() {
                top.1 += 1;
            }
            match marks.get(to).copied().unwrap_or(Mark::Done) {
                Mark::New => {
                    marks.insert(to, Mark::Open);
                    stack.push((to, 0));
                }
                Mark::Open => {
                    let from = stack.iter().position(|(n, _)| *n == to).unwrap_or(0);
                    let mut cycle: Vec<&str> = stack[from..].iter().map(|(n, _)| *n).collect();
                    let mut canonical = cycle.clone();
                    let min = canonical
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, n)| **n)
                        .map(|(i, _)| i)
                        .unwrap_or(0);
                    canonical.rotate_left(min);
                    if seen.insert(canonical) {
                        cycle.push(to);
                        cycles.push((cycle, span));
                    }
                }
                Mark::Done => {}
            }
        }
    }
    cycles
}

// ---------------------------------------------------------------------------------------------
// Paths, places and words.

fn to_path(path: &serde_path_to_error::Path) -> Vec<PathSegment> {
    path.iter()
        .filter_map(|segment| match segment {
            serde_path_to_error::Segment::Seq { index } => Some(PathSegment::Index(*index)),
            serde_path_to_error::Segment::Map { key } => Some(PathSegment::Key(key.clone())),
            _ => None,
        })
        .collect()
}

/// Removes the value at `path` from `json`; false when there is nothing there.
fn remove_json(json: &mut Value, path: &[PathSegment]) -> bool {
    let Some((last, parent)) = path.split_last() else {
        return false;
    };
    let mut node = json;
    for segment in parent {
        node = match (segment, node) {
            (PathSegment::Key(k), Value::Object(map)) => match map.get_mut(k) {
                Some(next) => next,
                None => return false,
            },
            (PathSegment::Index(i), Value::Array(items)) => match items.get_mut(*i) {
                Some(next) => next,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, node) {
        (PathSegment::Key(k), Value::Object(map)) => map.shift_remove(k).is_some(),
        (PathSegment::Index(i), Value::Array(items)) if *i < items.len() => {
            // A list item cannot be left out without shifting the others: drop the whole list.
            items.clear();
            true
        }
        _ => false,
    }
}

/// Where the value at `path` is; for a missing value, the nearest place that exists.
pub(crate) fn span_of(tree: &Node, path: &[PathSegment]) -> Span {
    for len in (0..=path.len()).rev() {
        if let Some(node) = tree.get(&path[..len]) {
            if len < path.len() {
                // The value is missing: point at the key of its parent when it has one.
                if let Some(key) = tree.key_at(&path[..len]) {
                    return key.span;
                }
            }
            return node.span;
        }
    }
    tree.span
}

fn last_key(path: &[PathSegment]) -> String {
    path.iter()
        .rev()
        .find_map(|s| match s {
            PathSegment::Key(k) => Some(k.clone()),
            PathSegment::Index(_) => None,
        })
        .unwrap_or_else(|| "the file".to_owned())
}

/// "webhook `deploy`", "`beforeDeployment` of target `dev`", ... for the container at `path`.
fn describe(tree: &Node, path: &[PathSegment]) -> String {
    let owner = match path {
        [PathSegment::Key(w), PathSegment::Index(i), ..] if w == "webhooks" => Some((
            2,
            match tree
                .get(&path[..2])
                .and_then(|n| n.field("name"))
                .and_then(Node::as_str)
            {
                Some(name) => format!("webhook `{name}`"),
                None => format!("webhook number {}", i + 1),
            },
        )),
        [PathSegment::Key(t), PathSegment::Key(name), ..] if t == "targets" => {
            Some((2, format!("target `{name}`")))
        }
        [PathSegment::Key(s), PathSegment::Key(name), ..] if s == "strategies" => {
            Some((2, format!("strategy `{name}`")))
        }
        _ => None,
    };
    match owner {
        Some((len, owner)) if path.len() > len => {
            format!("`{}` of {owner}", last_key(&path[len..]))
        }
        Some((_, owner)) => owner,
        None if path.is_empty() => "the top level".to_owned(),
        None => format!("`{}`", last_key(path)),
    }
}

/// Rewrites serde's wording into the file's terms, naming the key.
fn humanize(path: &[PathSegment], message: &str) -> String {
    let field = last_key(path);
    if let Some(rest) = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
        && let Some((found, expected)) = rest.rsplit_once(", expected ")
    {
        return format!(
            "`{field}` must be {}, found {}",
            expected_words(expected),
            found_words(found)
        );
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        let given = rest.split(", expected").next().unwrap_or(rest);
        return format!("`{field}` cannot be {given}");
    }
    format!("`{field}`: {message}")
}

/// The key named by serde's "missing field `x`".
fn missing_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
}

fn expected_words(expected: &str) -> String {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number (0 or more)".to_owned(),
        "i64" | "i32" => "a whole number".to_owned(),
        "a string" => "text".to_owned(),
        "a sequence" => "a list".to_owned(),
        "a boolean" => "`true` or `false`".to_owned(),
        other if other.starts_with("struct ") || other == "a map" => "a map".to_owned(),
        other => other.to_owned(),
    }
}

fn found_words(found: &str) -> String {
    if let Some(text) = found.strip_prefix("string ") {
        return format!("the text {text}");
    }
    if let Some(number) = found
        .strip_prefix("integer ")
        .or_else(|| found.strip_prefix("floating point "))
    {
        return format!("the number {}", number.trim_matches('`'));
    }
    if let Some(value) = found.strip_prefix("boolean ") {
        return value.to_owned();
    }
    match found {
        "sequence" => "a list".to_owned(),
        "map" => "a map".to_owned(),
        "unit value" | "null" => "nothing".to_owned(),
        other => other.to_owned(),
    }
}

fn found_kind(value: &NodeValue) -> &'static str {
    match value {
        NodeValue::Null => "nothing",
        NodeValue::Bool(_) => "a boolean",
        NodeValue::Number(_) => "a number",
        NodeValue::String(_) => "text",
        NodeValue::Seq(_) => "a list",
        NodeValue::Map(_) => "a map",
    }
}

/// The closest of `candidates` to `given`, when one is close enough to be a likely typo.
pub(crate) fn closest<'a>(
    given: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let given_lower = given.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(&given_lower, &c.to_lowercase()), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// Up to three names close to `given`, best first.
fn close_names<'a>(given: &str, candidates: &[&'a str]) -> Vec<&'a str> {
    let given_lower = given.to_lowercase();
    let mut scored: Vec<(f64, &str)> = candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(&given_lower, &c.to_lowercase()), *c))
        .filter(|(score, _)| *score >= 0.7)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().take(3).map(|(_, c)| c).collect()
}

fn not_found_help(given: &str, known: &[&str], what: &str, where_: &str) -> String {
    let close = close_names(given, known);
    if !close.is_empty() {
        format!("close names: {}", backticked(&close))
    } else if known.is_empty() {
        format!("there is no {what} yet: add one {where_}")
    } else {
        format!("the names {where_} are {}", backticked(known))
    }
}

fn backticked<S: AsRef<str>>(names: &[S]) -> String {
    names
        .iter()
        .map(|n| format!("`{}`", n.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_finds_typos_only() {
        let keys = ["name", "uriTemplate", "method", "headers"];
        assert_eq!(closest("uriTemplat", keys), Some("uriTemplate"));
        assert_eq!(closest("URITemplate", keys), Some("uriTemplate"));
        assert_eq!(closest("zzz", keys), None);
    }

    #[test]
    fn quoting_picks_a_form_that_keeps_the_text() {
        assert_eq!(quote("{{a}}/b"), "\"{{a}}/b\"");
        assert_eq!(quote(r#"{{a}} "x""#), r#"'{{a}} "x"'"#);
    }

    #[test]
    fn humanized_messages_name_the_key() {
        let path = [key("webhooks"), PathSegment::Index(0), key("retryCount")];
        assert_eq!(
            humanize(&path, "invalid type: string \"three\", expected u32"),
            "`retryCount` must be a whole number (0 or more), found the text \"three\""
        );
    }
}
