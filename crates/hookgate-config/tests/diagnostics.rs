//! What a user sees for each kind of mistake in a deployment file: every file under
//! `tests/data/invalid/` is loaded and its rendered diagnostics (text and GitHub annotations) are
//! compared with a reviewed snapshot. Each file holds one family of mistakes, several at once,
//! which also shows that one run reports all of them.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use hookgate_config::{Severity, load, load_str};

/// Loads `tests/data/invalid/NAME.yml` and renders what `hookgate validate` would print.
fn rendered(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/invalid")
        .join(format!("{name}.yml"));
    let text = std::fs::read_to_string(&path).unwrap();
    let diags = load_str(&format!("{name}.yml"), &text).expect_err("the file must be invalid");
    format!(
        "{diags}\n\n--- GitHub annotations ---\n{}",
        diags.github_annotations()
    )
}

macro_rules! snapshot_tests {
    ($($test:ident => $file:literal,)*) => {
        $(
            #[test]
            fn $test() {
                insta::assert_snapshot!($file, rendered($file));
            }
        )*
    };
}

snapshot_tests! {
    unknown_keys_in_strict_parts_suggest_the_right_key => "unknown-keys",
    type_errors_name_the_key_and_the_expected_type => "type-errors",
    unknown_and_duplicate_names_list_close_names => "references",
    depends_on_cycles_are_printed => "depends-on-cycle",
    unquoted_template_that_breaks_yaml_is_repaired_and_reported => "unquoted-template-parse-error",
    unquoted_template_read_as_a_map_is_reported => "unquoted-template-flow-map",
    block_text_that_looks_like_a_template_is_left_alone => "unquoted-template-in-block",
    a_webhook_calls_exactly_one_thing => "webhook-targets",
    wait_mode_settings_must_agree => "wait-modes",
    github_limits_are_checked => "github-limits",
    a_constraint_step_does_one_thing => "constraint-steps",
    invalid_yaml_is_located => "not-yaml",
    a_file_that_is_not_a_map_is_rejected => "not-a-map",
    a_repeated_key_is_reported_and_the_rest_checked => "duplicate-keys",
    empty_values_and_zero_durations_are_reported => "empty-values",
}

#[test]
fn every_example_is_valid_without_warnings() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yml") {
            continue;
        }
        match load(&path) {
            Ok(loaded) => assert!(
                loaded.warnings.is_empty(),
                "{}: unexpected warnings:\n{}",
                path.display(),
                loaded.warnings
            ),
            Err(diags) => panic!("{} is invalid:\n{diags}", path.display()),
        }
        count += 1;
    }
    assert!(count >= 5, "expected the examples, found {count}");
}

/// Armory's Remote Network Agent example loads: one warning at `networkMode`, saying that the
/// URL is called directly and what plays the agent's part.
#[test]
fn a_remote_network_agent_webhook_is_a_warning_not_an_error() {
    let name = "remote-network-agent.yml";
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/armory")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let loaded = load_str(name, &text).unwrap();
    assert_eq!(
        loaded.warnings.count(Severity::Warning),
        1,
        "{}",
        loaded.warnings
    );
    insta::assert_snapshot!(
        "armory-remote-network-agent",
        format!(
            "{}\n\n--- GitHub annotations ---\n{}",
            loaded.warnings,
            loaded.warnings.github_annotations()
        )
    );
    let plan = hookgate_config::plan(
        &loaded.file,
        "staging",
        hookgate_config::Phase::AfterDeployment,
    )
    .unwrap();
    assert_eq!(plan.groups.len(), 1);
}

#[test]
fn a_timeout_past_a_hosted_job_or_a_token_is_a_warning_at_its_line() {
    let file = |timeout: &str| {
        format!(
            "webhooks:\n  - name: soak\n    uriTemplate: https://example.com\n    timeout: {timeout}\n"
        )
    };
    let loaded = load_str("deploy.yml", &file("7h")).unwrap();
    assert_eq!(loaded.warnings.count(Severity::Warning), 1);
    let text = loaded.warnings.to_string();
    assert!(text.contains("longer than 6 hours"), "{text}");
    assert!(text.contains("deploy.yml:4:14"), "{text}");
    assert!(text.contains("self-hosted runner"), "{text}");
    let loaded = load_str("deploy.yml", &file("25h")).unwrap();
    assert_eq!(loaded.warnings.count(Severity::Warning), 1);
    let text = loaded.warnings.to_string();
    assert!(
        text.contains("GITHUB_TOKEN expires 24 hours after the job starts"),
        "{text}"
    );
    assert!(text.contains("GitHub App"), "{text}");
    for within in ["6h", "30m"] {
        let loaded = load_str("deploy.yml", &file(within)).unwrap();
        assert!(loaded.warnings.is_empty(), "{within}: {}", loaded.warnings);
    }
}

#[test]
fn poll_outputs_need_output_names_and_jsonpaths() {
    let text = "webhooks:\n  - name: job\n    uriTemplate: https://example.com\n    waitFor: poll\n    poll:\n      outputs:\n        url: $.report.url\n        1st: $.a\n        ok: report.url\n";
    let diags = load_str("deploy.yml", text).unwrap_err();
    let text = diags.to_string();
    assert!(
        text.contains("output `1st` of webhook `job` is not a name GitHub takes for an output"),
        "{text}"
    );
    assert!(text.contains("deploy.yml:8:9"), "{text}");
    assert!(
        text.contains("output `ok` of webhook `job` is not a JSONPath expression"),
        "{text}"
    );
    assert!(!text.contains("`url`"), "{text}");
}

#[test]
fn warnings_alone_leave_the_file_valid() {
    let text = "webhooks:\n  - name: a\n    uriTemplate: https://example.com\n    waitFor: none\n    poll:\n      statusJsonPath: $.status\n";
    let loaded = load_str("deploy.yml", text).unwrap();
    assert_eq!(loaded.warnings.count(Severity::Warning), 1);
    assert!(
        loaded
            .warnings
            .to_string()
            .contains("`poll` of webhook `a` is ignored: it waits for `none`"),
        "{}",
        loaded.warnings
    );
    assert_eq!(loaded.file.webhooks[0].name, "a");
}

#[test]
fn an_empty_file_is_an_error() {
    let diags = load_str("deploy.yml", "").unwrap_err();
    assert!(
        diags.to_string().contains("the deployment file is empty"),
        "{diags}"
    );
}

#[test]
fn a_missing_file_is_one_error_without_a_place() {
    let diags = load("/nonexistent/deploy.yml").unwrap_err();
    assert_eq!(diags.items.len(), 1);
    assert!(diags.items[0].span.is_none());
    assert!(
        diags
            .to_string()
            .contains("cannot read the deployment file"),
        "{diags}"
    );
}

#[test]
fn armory_context_written_as_an_empty_list_is_accepted() {
    let text = "targets:\n  dev:\n    constraints:\n      beforeDeployment:\n        - runWebhook:\n            name: a\n            context: []\nwebhooks:\n  - name: a\n    uriTemplate: https://example.com\n";
    let loaded = load_str("deploy.yml", text).unwrap();
    assert!(
        loaded.file.targets["dev"]
            .constraints
            .as_ref()
            .unwrap()
            .before_deployment[0]
            .run_webhook
            .as_ref()
            .unwrap()
            .context
            .is_empty()
    );
}

#[test]
fn pause_units_are_armorys_three_in_any_case() {
    let file = |unit: &str| {
        format!(
            "targets:\n  t:\n    constraints:\n      beforeDeployment:\n        - pause: {{duration: 2, unit: {unit}}}\n"
        )
    };
    for (unit, seconds) in [
        ("seconds", 2),
        ("MINUTES", 120),
        ("Hours", 7200),
        ("hours", 7200),
    ] {
        let loaded = load_str("deploy.yml", &file(unit)).unwrap();
        let plan =
            hookgate_config::plan(&loaded.file, "t", hookgate_config::Phase::BeforeDeployment)
                .unwrap();
        let steps: Vec<_> = plan.steps().collect();
        assert!(
            matches!(steps[..], [hookgate_config::PlannedStep::Pause { duration }] if duration.as_secs() == seconds),
            "{unit}: {steps:?}"
        );
    }
    for (unit, help) in [
        ("days", "use one of `seconds`, `minutes`, `hours`"),
        ("minuts", "did you mean `minutes`?"),
        ("m", "use one of `seconds`, `minutes`, `hours`"),
    ] {
        let diags = load_str("deploy.yml", &file(unit)).unwrap_err();
        let text = diags.to_string();
        assert!(
            text.contains(&format!("`unit` cannot be `{unit}`"))
                && text.contains("deploy.yml:5:38")
                && text.contains(help),
            "{unit}: {text}"
        );
    }
}

#[test]
fn a_dispatch_cannot_be_polled() {
    let text = "webhooks:\n  - name: tests\n    repositoryDispatch:\n      repository: o/tests\n      eventType: run\n    waitFor: poll\n";
    let diags = load_str("deploy.yml", text).unwrap_err();
    let text = diags.to_string();
    assert!(
        text.contains("webhook `tests` polls, but a GitHub dispatch answers with no status URL")
            && text.contains("deploy.yml:6:14")
            && text.contains("waitFor: workflowRun"),
        "{text}"
    );
}

#[test]
fn plans_resolve_the_wait_and_the_time_limit() {
    let text = "targets:\n  t:\n    constraints:\n      beforeDeployment:\n        - runWebhook: {name: armory}\n        - runWebhook: {name: off}\n        - runWebhook: {name: polled}\n        - runWebhook: {name: still-callback}\nwebhooks:\n  - name: armory\n    uriTemplate: https://example.com\n  - name: off\n    uriTemplate: https://example.com\n    disableCallback: true\n    timeout: 90s\n  - name: polled\n    uriTemplate: https://example.com\n    waitFor: poll\n    timeout: 2h\n  - name: still-callback\n    uriTemplate: https://example.com\n    disableCallback: false\n";
    let loaded = load_str("deploy.yml", text).unwrap();
    let plan =
        hookgate_config::plan(&loaded.file, "t", hookgate_config::Phase::BeforeDeployment).unwrap();
    let resolved: Vec<(String, &str, u64)> = plan
        .steps()
        .map(|step| match step {
            hookgate_config::PlannedStep::Webhook(call) => (
                call.step_name.clone(),
                call.wait.as_str(),
                call.timeout.as_secs(),
            ),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        resolved,
        [
            ("armory".to_owned(), "callback", 24 * 3600),
            ("off".to_owned(), "none", 90),
            ("polled".to_owned(), "poll", 7200),
            ("still-callback".to_owned(), "callback", 24 * 3600),
        ]
    );
}
