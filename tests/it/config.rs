//! `hookgate validate`, `plan` and `schema` as a user runs them: the real binary on the files
//! under `examples/` and on broken files, with snapshots of what it prints.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use crate::common::hookgate;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn examples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("yml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 5,
        "expected the example files, found {files:?}"
    );
    files
}

const INVALID: &str = "crates/hookgate-config/tests/data/invalid";

/// Runs `hookgate ARGS` in the repository root; returns (exit code, stdout, stderr).
fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = hookgate();
    cmd.current_dir(root()).args(args);
    for (key, value) in env {
        cmd.env(key, value);
    }
    let output = cmd.output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn validate_accepts_every_example() {
    for example in examples() {
        let relative = example
            .strip_prefix(root())
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let (code, stdout, stderr) = run(&["validate", "--file", &relative], &[]);
        assert_eq!(code, 0, "{relative}: {stderr}");
        assert!(
            stdout.starts_with(&format!("{relative} is valid: ")),
            "{stdout}"
        );
        assert_eq!(stderr, "", "{relative} printed warnings");
    }
}

#[test]
fn validate_reports_every_error_and_exits_2() {
    let file = format!("{INVALID}/references.yml");
    let (code, stdout, stderr) = run(&["validate", "-f", &file], &[]);
    assert_eq!(code, 2);
    assert_eq!(stdout, "", "no annotations outside GitHub Actions");
    insta::assert_snapshot!("validate_references", stderr);
}

#[test]
fn validate_explains_armory_style_unquoted_templates() {
    let file = format!("{INVALID}/unquoted-template-parse-error.yml");
    let (code, _, stderr) = run(&["validate", "--file", &file], &[]);
    assert_eq!(code, 2);
    insta::assert_snapshot!("validate_unquoted_template", stderr);
}

#[test]
fn validate_in_github_actions_writes_error_annotations() {
    let file = format!("{INVALID}/unknown-keys.yml");
    let (code, stdout, stderr) = run(
        &["validate", "--file", &file],
        &[("GITHUB_ACTIONS", "true")],
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("did you mean `uriTemplate`?"), "{stderr}");
    insta::assert_snapshot!("validate_annotations", stdout);
}

#[test]
fn validate_prints_warnings_but_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deploy.yml");
    std::fs::write(
        &file,
        "webhooks:\n  - name: ping\n    uriTemplate: https://example.com\n    disableCallback: true\n    callback:\n      auth: bearer\n",
    )
    .unwrap();
    let (code, stdout, stderr) = run(
        &["validate", "--file", file.to_str().unwrap()],
        &[("GITHUB_ACTIONS", "true")],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("::warning file="), "{stdout}");
    assert!(
        stdout.contains("is valid: 0 targets, 0 strategies, 1 webhook"),
        "{stdout}"
    );
    assert!(
        stderr.contains("warning: `callback` of webhook `ping` is ignored"),
        "{stderr}"
    );
}

#[test]
fn validate_defaults_to_deploy_yml_in_the_current_directory() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = hookgate();
    let output = cmd
        .current_dir(dir.path())
        .arg("validate")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("cannot read the deployment file") && stderr.contains("deploy.yml"),
        "{stderr}"
    );
    std::fs::copy(
        root().join("examples/canary-system-health.yml"),
        dir.path().join("deploy.yml"),
    )
    .unwrap();
    let output = hookgate()
        .current_dir(dir.path())
        .arg("validate")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
}

#[test]
fn plan_shows_steps_wait_modes_and_conditions() {
    let (code, stdout, stderr) = run(
        &[
            "plan",
            "--file",
            "examples/hookgate-extensions.yml",
            "--target",
            "staging",
            "--phase",
            "before-deployment",
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    insta::assert_snapshot!("plan_extensions_before", stdout);
}

/// Armory's Remote Network Agent example: `validate` passes with the warning, `plan` shows the
/// call and who makes it.
#[test]
fn a_remote_network_agent_file_validates_and_plans() {
    let file = "crates/hookgate-config/tests/data/armory/remote-network-agent.yml";
    let (code, stdout, stderr) = run(&["validate", "--file", file], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("is valid"), "{stdout}");
    assert!(stderr.contains("0 errors, 1 warning"), "{stderr}");
    let (code, stdout, stderr) = run(
        &[
            "plan",
            "--file",
            file,
            "--target",
            "staging",
            "--phase",
            "after-deployment",
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("calls    POST https://tests.lab.internal/suites/smoke/"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "network  directly from this machine, in place of the Remote Network Agent (agent `lab-agent`)"
        ),
        "{stdout}"
    );
}

#[test]
fn plan_marks_parallel_groups_and_steps_it_does_not_handle() {
    let (code, stdout, stderr) = run(
        &[
            "plan",
            "--file",
            "examples/blue-green-security-scan.yml",
            "--target",
            "prod",
            "--phase",
            "strategy",
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    insta::assert_snapshot!("plan_blue_green", stdout);
    let (code, stdout, _) = run(
        &[
            "plan",
            "-f",
            "examples/canary-system-health.yml",
            "--target",
            "staging",
            "--phase",
            "strategy",
        ],
        &[],
    );
    assert_eq!(code, 0);
    insta::assert_snapshot!("plan_canary", stdout);
}

#[test]
fn plan_json_accepts_the_camel_case_phase() {
    let (code, stdout, stderr) = run(
        &[
            "plan",
            "-f",
            "examples/hookgate-extensions.yml",
            "--target",
            "staging",
            "--phase",
            "afterDeployment",
            "--format",
            "json",
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    let plan: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(plan["phase"], "after-deployment");
    let steps: Vec<&serde_json::Value> = plan["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["steps"].as_array().unwrap())
        .collect();
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0]["stepName"], "Integration-Tests");
    assert_eq!(
        steps[0]["webhook"]["repositoryDispatch"]["eventType"],
        "run-integration-tests"
    );
    assert_eq!(steps[1]["webhook"]["waitFor"], "workflowRun");
}

#[test]
fn plan_refuses_unknown_targets_and_phases() {
    let (code, _, stderr) = run(
        &[
            "plan",
            "-f",
            "examples/hookgate-extensions.yml",
            "--target",
            "qa",
            "--phase",
            "strategy",
        ],
        &[],
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("no target named `qa` in the deployment file (targets: staging, prod)"),
        "{stderr}"
    );
    let (code, _, stderr) = run(
        &["plan", "--target", "prod", "--phase", "during-deployment"],
        &[],
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("use before-deployment, after-deployment or strategy"),
        "{stderr}"
    );
}

#[test]
fn plan_of_an_invalid_file_prints_its_errors() {
    let file = format!("{INVALID}/references.yml");
    let (code, stdout, stderr) = run(
        &[
            "plan", "-f", &file, "--target", "prod", "--phase", "strategy",
        ],
        &[],
    );
    assert_eq!(code, 2);
    assert_eq!(stdout, "");
    assert!(stderr.contains("references.yml: 6 errors"), "{stderr}");
}

#[test]
fn schema_matches_the_committed_copy() {
    let (code, stdout, _) = run(&["schema"], &[]);
    assert_eq!(code, 0);
    let committed =
        std::fs::read_to_string(root().join("schema/deploy.schema.json")).unwrap_or_default();
    assert!(
        stdout == committed,
        "schema/deploy.schema.json is stale: regenerate it with\n  cargo run -- schema > schema/deploy.schema.json"
    );
}

#[test]
fn committed_schema_accepts_every_example_and_refuses_a_misspelt_key() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("schema/deploy.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for example in examples() {
        let text = std::fs::read_to_string(&example).unwrap();
        let instance = hookgate_config::located::parse(&text).unwrap().to_json();
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", example.display());
    }
    let misspelt = serde_json::json!({"webhooks": [{"name": "a", "uriTemplat": "https://x"}]});
    assert!(!validator.is_valid(&misspelt));
}

#[test]
fn help_explains_each_command_with_examples() {
    for command in ["validate", "plan", "schema"] {
        let (code, stdout, _) = run(&[command, "--help"], &[]);
        assert_eq!(code, 0);
        assert!(stdout.contains("Examples:"), "{command} --help:\n{stdout}");
        assert!(
            stdout.contains(&format!("hookgate {command}")),
            "{command} --help:\n{stdout}"
        );
    }
    let (code, stdout, _) = run(&["--version"], &[]);
    assert_eq!(code, 0);
    assert_eq!(
        stdout.trim(),
        format!("hookgate {}", env!("CARGO_PKG_VERSION"))
    );
}

/// `hookgate run` shows the loader's warnings (a setting hookgate ignores) and still runs.
#[test]
fn run_prints_warnings_and_goes_on() {
    let service = crate::support::TestServer::start(|_, _| crate::support::Reply::status(200));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deploy.yml");
    std::fs::write(
        &file,
        format!(
            "targets:\n  staging:\n    constraints:\n      beforeDeployment:\n        - runWebhook:\n            name: ping\nwebhooks:\n  - name: ping\n    uriTemplate: {}/ping\n    agentIdentifier: my-agent\n    waitFor: none\n",
            service.url
        ),
    )
    .unwrap();
    let output = hookgate()
        .args([
            "run",
            "--target",
            "staging",
            "--phase",
            "before-deployment",
            "--file",
        ])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("`agentIdentifier` of webhook `ping` is ignored"),
        "{stderr}"
    );
    assert_eq!(service.requests_to("/ping").len(), 1);
}

/// A file that uses `tests_token` twice and `callback_secret` once.
const USES_TWO_SECRETS: &str = "\
webhooks:
  - name: tests
    uriTemplate: https://ci.example.com/run
    headers:
      - key: Authorization
        value: \"Bearer {{ secrets.tests_token }}\"
    bodyTemplate:
      inline: '{\"again\": \"{{ secrets[\\\"tests_token\\\"] }}\"}'
    callback:
      auth: hmac
      secret: \"{{ secrets.callback_secret }}\"
";

#[test]
fn validate_warns_about_secrets_used_but_not_passed_and_passed_but_unused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deploy.yml");
    std::fs::write(&file, USES_TWO_SECRETS).unwrap();
    let file = file.to_str().unwrap();

    let (code, _, stderr) = run(
        &[
            "validate",
            "-f",
            file,
            "--secret-names",
            "tests_token,everything_else",
        ],
        &[],
    );
    assert_eq!(code, 0, "warnings only: {stderr}");
    assert!(
        stderr.contains(
            "`secrets.callback_secret` is used here but no secret `callback_secret` is passed"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("deploy.yml:11:15"),
        "the warning points at the use: {stderr}"
    );
    assert!(
        stderr.contains("the secret `everything_else` is passed but the file never uses"),
        "{stderr}"
    );
    assert!(!stderr.contains("`tests_token` is"), "{stderr}");

    // Exactly the secrets the file uses: nothing to say.
    let (code, _, stderr) = run(
        &[
            "validate",
            "-f",
            file,
            "--secret-names",
            "callback_secret,tests_token",
        ],
        &[],
    );
    assert_eq!((code, stderr.as_str()), (0, ""));
    // Without names, validate does not know what a run is given and says nothing of secrets.
    let (code, _, stderr) = run(&["validate", "-f", file], &[]);
    assert_eq!((code, stderr.as_str()), (0, ""));
}

#[test]
fn the_action_validates_the_secrets_input_against_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deploy.yml");
    std::fs::write(&file, USES_TWO_SECRETS).unwrap();
    let output = hookgate()
        .current_dir(root())
        .arg("action")
        .env("INPUT_COMMAND", "validate")
        .env("INPUT_DEPLOYMENT-FILE", &file)
        .env(
            "INPUT_SECRETS",
            "tests_token=t0ken-value\nREPO_ADMIN_TOKEN=adm1n-value\ncallback_secret=s3cret-value",
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("the secret `REPO_ADMIN_TOKEN` is passed but the file never uses"),
        "{stderr}"
    );
    for value in ["t0ken-value", "adm1n-value", "s3cret-value"] {
        assert!(
            !stderr.contains(value),
            "a secret's value was printed: {stderr}"
        );
    }
}
