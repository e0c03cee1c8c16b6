//! Templates: `{{ ... }}` in URLs, header values, bodies, client payloads and `if:` conditions,
//! rendered with minijinja (Armory's mustache subset is valid Jinja). Undefined variables are
//! errors that name the webhook, the field and the variable, never an empty string.

use minijinja::{Environment, UndefinedBehavior, Value};

/// Where a template sits, for error messages.
#[derive(Debug, Clone)]
pub struct TemplateSite<'a> {
    /// The webhook's name.
    pub webhook: &'a str,
    /// The field, such as `uriTemplate`, `headers.Authorization` or `bodyTemplate.inline`.
    pub field: &'a str,
}

/// A template that could not be rendered.
#[derive(Debug, Clone, thiserror::Error)]
#[error("webhook `{webhook}`, field `{field}`: {problem}")]
pub struct TemplateError {
    /// The webhook's name.
    pub webhook: String,
    /// The field.
    pub field: String,
    /// The variable that is not defined, when the problem is one.
    pub variable: Option<String>,
    /// What went wrong, naming the variable when one is undefined.
    pub problem: String,
}

fn environment<'a>() -> Environment<'a> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Bodies are JSON or text, never HTML: no auto-escaping whatever the field is called.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    // Booleans print as JSON spells them (`true`, not Python's `True`): bodies are mostly JSON.
    env.set_formatter(|out, state, value| {
        if value.kind() == minijinja::value::ValueKind::Bool {
            out.write_str(if value.is_true() { "true" } else { "false" })
                .map_err(|err| {
                    minijinja::Error::new(minijinja::ErrorKind::WriteFailure, err.to_string())
                })
        } else {
            minijinja::escape_formatter(out, state, value)
        }
    });
    env
}

/// Renders `source` with `vars` (a JSON object of `secrets`, `context`, `armory`, ...).
pub fn render(
    source: &str,
    vars: &serde_json::Value,
    site: &TemplateSite<'_>,
) -> Result<String, TemplateError> {
    // Text without template syntax needs no engine (and cannot fail).
    if !source.contains("{{") && !source.contains("{%") && !source.contains("{#") {
        return Ok(source.to_owned());
    }
    let env = environment();
    let template = env
        .template_from_str(source)
        .map_err(|err| syntax_error(site, &err))?;
    template
        .render(Value::from(minijinja::value::Serde(vars)))
        .map_err(|err| {
            render_error(
                site,
                source,
                vars,
                &err,
                &template.undeclared_variables(true),
            )
        })
}

/// Evaluates an `if:` condition: `{{ expression }}` (or a bare expression) over `vars`.
/// Truthiness is Jinja's: `false`, `0`, `""`, empty lists and `none` are false.
pub fn condition(
    source: &str,
    vars: &serde_json::Value,
    site: &TemplateSite<'_>,
) -> Result<bool, TemplateError> {
    let trimmed = source.trim();
    let inner = trimmed
        .strip_prefix("{{")
        .and_then(|rest| rest.strip_suffix("}}"))
        .filter(|inner| !inner.contains("{{") && !inner.contains("}}"))
        .or_else(|| (!trimmed.contains("{{") && !trimmed.contains("{%")).then_some(trimmed));
    match inner {
        Some(expression) => {
            let env = environment();
            let compiled = env
                .compile_expression(expression.trim())
                .map_err(|err| syntax_error(site, &err))?;
            let value = compiled
                .eval(Value::from(minijinja::value::Serde(vars)))
                .map_err(|err| {
                    render_error(
                        site,
                        expression,
                        vars,
                        &err,
                        &compiled.undeclared_variables(true),
                    )
                })?;
            Ok(value.is_true())
        }
        None => {
            // Text around the expression: render, then read the result as a boolean.
            let rendered = render(trimmed, vars, site)?;
            match rendered.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" => Ok(true),
                "false" | "no" | "0" | "" | "none" => Ok(false),
                other => Err(TemplateError {
                    webhook: site.webhook.to_owned(),
                    field: site.field.to_owned(),
                    variable: None,
                    problem: format!(
                        "the condition rendered to `{other}`, which is neither true nor false; write it as `{{{{ expression }}}}`"
                    ),
                }),
            }
        }
    }
}

fn syntax_error(site: &TemplateSite<'_>, err: &minijinja::Error) -> TemplateError {
    let line = err
        .line()
        .map(|l| format!(" (line {l})"))
        .unwrap_or_default();
    TemplateError {
        webhook: site.webhook.to_owned(),
        field: site.field.to_owned(),
        variable: None,
        problem: format!(
            "template syntax error{line}: {}",
            err.detail().unwrap_or("invalid template")
        ),
    }
}

fn render_error(
    site: &TemplateSite<'_>,
    source: &str,
    vars: &serde_json::Value,
    err: &minijinja::Error,
    undeclared: &std::collections::HashSet<String>,
) -> TemplateError {
    let snippet = err
        .range()
        .and_then(|range| source.get(range))
        .map(str::trim)
        .filter(|s| !s.is_empty());
    if err.kind() == minijinja::ErrorKind::UndefinedError {
        let mut names: Vec<&String> = undeclared.iter().collect();
        names.sort();
        // The missing part, and the whole name it was found in (`armory.preview` of
        // `armory.preview.web`).
        let missing = names
            .into_iter()
            .find_map(|name| missing_part(vars, name).map(|part| (part, name.as_str())));
        let whole = missing.as_ref().map(|(_, name)| *name);
        let variable = missing
            .map(|(part, _)| part)
            .or_else(|| snippet.map(str::to_owned));
        let problem = match &variable {
            Some(variable) => {
                let known = known_names(vars, variable);
                let hint = armory_hint(whole.unwrap_or(variable));
                format!("`{variable}` is not defined{known}{hint}")
            }
            None => "a variable is not defined".to_owned(),
        };
        return TemplateError {
            webhook: site.webhook.to_owned(),
            field: site.field.to_owned(),
            variable,
            problem,
        };
    }
    let at = snippet.map(|s| format!(" in `{s}`")).unwrap_or_default();
    TemplateError {
        webhook: site.webhook.to_owned(),
        field: site.field.to_owned(),
        variable: None,
        problem: format!(
            "cannot render{at}: {}",
            err.detail().unwrap_or("invalid template")
        ),
    }
}

/// What to pass for an `armory.*` value hookgate cannot know by itself.
fn armory_hint(variable: &str) -> String {
    let Some(name) = variable.strip_prefix("armory.") else {
        return String::new();
    };
    if name == "replicaSetName" {
        return "; pass it with `--armory replicaSetName=NAME` (the action's `armory` input)"
            .to_owned();
    }
    if name == "preview" || name.starts_with("preview.") {
        let service = name.strip_prefix("preview.").unwrap_or("SERVICE");
        return format!(
            "; pass it with `--armory preview.{service}=URL` (the action's `armory` input)"
        );
    }
    format!(
        "; Armory's `{name}` has no meaning on GitHub: pass the value with `--context {name}=VALUE` and write `{{{{ context.{name} }}}}`"
    )
}

/// The shortest prefix of a dotted name (`secrets.token`) that `vars` does not have.
fn missing_part(vars: &serde_json::Value, dotted: &str) -> Option<String> {
    let mut current = vars;
    let mut path = Vec::new();
    for part in dotted.split('.') {
        path.push(part);
        match current.get(part) {
            Some(next) => current = next,
            None => return Some(path.join(".")),
        }
    }
    None
}

/// `(known: a, b)` for the parent of `variable`, so the user sees what is there to use.
fn known_names(vars: &serde_json::Value, variable: &str) -> String {
    let parent = match variable.rsplit_once('.') {
        Some((parent, _)) => parent
            .split('.')
            .try_fold(vars, |value, part| value.get(part)),
        None => Some(vars),
    };
    match parent.and_then(serde_json::Value::as_object) {
        Some(map) if map.is_empty() => " (there is nothing there)".to_owned(),
        Some(map) => {
            let names: Vec<&str> = map.keys().map(String::as_str).collect();
            format!(" (defined: {})", names.join(", "))
        }
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    fn site() -> TemplateSite<'static> {
        TemplateSite {
            webhook: "deploy-check",
            field: "uriTemplate",
        }
    }

    #[test]
    fn renders_variables_of_every_scope() {
        let vars = json!({
            "secrets": {"token": "s3"},
            "context": {"env": "staging"},
            "steps": {"Call Endpoint": {"body": {"ok": true}}},
        });
        let out = render(
            "{{ secrets.token }}/{{context.env}}/{{ steps['Call Endpoint'].body.ok }}",
            &vars,
            &site(),
        )
        .unwrap();
        assert_eq!(out, "s3/staging/true");
    }

    #[test]
    fn an_undefined_variable_names_webhook_field_and_variable() {
        let vars = json!({"secrets": {"token": "x"}, "context": {}});
        let err = render("https://h/{{ secrets.tokn }}", &vars, &site()).unwrap_err();
        assert_eq!(err.variable.as_deref(), Some("secrets.tokn"));
        let text = err.to_string();
        assert!(text.contains("webhook `deploy-check`"), "{text}");
        assert!(text.contains("field `uriTemplate`"), "{text}");
        assert!(text.contains("`secrets.tokn` is not defined"), "{text}");
        assert!(text.contains("defined: token"), "{text}");
    }

    #[test]
    fn armory_values_the_workflow_must_pass_say_how_and_others_what_instead() {
        let armory = crate::ArmoryValues {
            application_name: "ledger".into(),
            ..crate::ArmoryValues::default()
        };
        let vars = json!({"armory": armory.to_json()});
        let problem = |source: &str| render(source, &vars, &site()).unwrap_err().problem;
        assert_eq!(
            problem("{{ armory.replicaSetName }}"),
            "`armory.replicaSetName` is not defined (defined: applicationName, environmentName, deploymentId, accountName, namespace); pass it with `--armory replicaSetName=NAME` (the action's `armory` input)"
        );
        assert!(
            problem("{{ armory.preview.ledger }}").ends_with(
                "pass it with `--armory preview.ledger=URL` (the action's `armory` input)"
            ),
            "{}",
            problem("{{ armory.preview.ledger }}")
        );
        assert!(
            problem("{{ armory.clusterName }}").ends_with(
                "Armory's `clusterName` has no meaning on GitHub: pass the value with `--context clusterName=VALUE` and write `{{ context.clusterName }}`"
            ),
            "{}",
            problem("{{ armory.clusterName }}")
        );

        let mut passed = armory.clone();
        passed.set("replicaSetName", "ledger-7f9c".into()).unwrap();
        passed
            .set("preview.ledger", "https://preview.example/ledger".into())
            .unwrap();
        let vars = json!({"armory": passed.to_json()});
        let out = render(
            "{{ armory.replicaSetName }} {{ armory.preview.ledger }}",
            &vars,
            &site(),
        )
        .unwrap();
        assert_eq!(out, "ledger-7f9c https://preview.example/ledger");
        let refused = passed.set("namespace", "x".into()).unwrap_err();
        assert!(
            refused.contains("`armory.namespace` cannot be passed"),
            "{refused}"
        );
        assert!(passed.set("preview.", "x".into()).is_err());
    }

    #[test]
    fn an_undefined_top_level_name_is_an_error_not_empty_text() {
        let err = render("{{ nothing }}", &json!({}), &site()).unwrap_err();
        assert_eq!(err.variable.as_deref(), Some("nothing"));
    }

    #[test]
    fn values_can_be_url_encoded() {
        let out = render(
            "https://h/?q={{ context.q | urlencode }}",
            &json!({"context": {"q": "a b&c"}}),
            &site(),
        )
        .unwrap();
        assert_eq!(out, "https://h/?q=a%20b%26c");
    }

    #[test]
    fn html_characters_are_not_escaped() {
        let out = render("{{ v }}", &json!({"v": "<a&b>\"'"}), &site()).unwrap();
        assert_eq!(out, "<a&b>\"'");
    }

    #[test]
    fn a_syntax_error_says_so() {
        let err = render("{{ a + }}", &json!({"a": 1}), &site()).unwrap_err();
        assert!(err.problem.contains("syntax error"), "{}", err.problem);
    }

    #[test]
    fn conditions_follow_jinja_truthiness() {
        let vars = json!({"steps": {"a": {"status": 200, "body": {"ok": false}}}});
        assert!(condition("{{ steps['a'].status == 200 }}", &vars, &site()).unwrap());
        assert!(!condition("{{ steps['a'].body.ok }}", &vars, &site()).unwrap());
        assert!(condition("steps.a.status < 300", &vars, &site()).unwrap());
        assert!(condition("ok={{ steps['a'].body.ok }}x", &vars, &site()).is_err());
        assert!(!condition("{{ steps['a'].body.ok }} ", &vars, &site()).unwrap());
    }

    #[test]
    fn a_condition_over_an_undefined_step_is_an_error() {
        let err = condition(
            "{{ steps['b'].status == 200 }}",
            &json!({"steps": {}}),
            &site(),
        )
        .unwrap_err();
        assert!(err.problem.contains("not defined"), "{}", err.problem);
    }
}
