//! Every example a user may copy works: each deployment file under `examples/` and `demo/`
//! validates, and each workflow under `examples/workflows/` gives the action only inputs that
//! `action.yml` declares and names a deployment file, target and phase that plan.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

use crate::common::hookgate;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .expect("read the folder")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    files.sort();
    files
}

fn load_yaml(path: &Path) -> Yaml {
    let text = std::fs::read_to_string(path).expect("read the file");
    YamlLoader::load_from_str(&text)
        .unwrap_or_else(|err| panic!("{} is not YAML: {err}", path.display()))
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{} is empty", path.display()))
}

#[test]
fn every_example_deployment_file_validates() {
    let mut files = yaml_files("examples");
    files.push(root().join("demo/deploy.yml"));
    assert!(
        files.len() >= 8,
        "expected the example deployment files, found {files:?}"
    );
    for file in files {
        let output = hookgate()
            .current_dir(root())
            .args(["validate", "--file"])
            .arg(&file)
            .output()
            .expect("run hookgate validate");
        assert!(
            output.status.success(),
            "{} does not validate:\n{}",
            file.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn every_example_workflow_uses_declared_inputs_and_plans() {
    let action = load_yaml(&root().join("action.yml"));
    let declared: BTreeSet<&str> = action["inputs"]
        .as_hash()
        .expect("action.yml has inputs")
        .keys()
        .filter_map(Yaml::as_str)
        .collect();
    let workflows = yaml_files("examples/workflows");
    assert!(
        workflows.len() >= 6,
        "expected the example workflows, found {workflows:?}"
    );
    let mut hookgate_steps = 0;
    for path in &workflows {
        let workflow = load_yaml(path);
        let jobs = workflow["jobs"]
            .as_hash()
            .unwrap_or_else(|| panic!("{} has no jobs", path.display()));
        assert!(
            workflow["permissions"]
                .as_hash()
                .is_some_and(|p| p.is_empty()),
            "{}: set `permissions: {{}}` at the top and grant per job",
            path.display()
        );
        for job in jobs.values() {
            for step in job["steps"].as_vec().into_iter().flatten() {
                let Some(uses) = step["uses"].as_str() else {
                    continue;
                };
                if !uses.starts_with("hookgate/hookgate@") {
                    let pinned = uses.split_once('@').is_some_and(|(_, rev)| {
                        rev.len() == 40 && rev.chars().all(|c| c.is_ascii_hexdigit())
                    });
                    assert!(pinned, "{}: pin `{uses}` to a commit SHA", path.display());
                    continue;
                }
                hookgate_steps += 1;
                check_hookgate_step(path, step, &declared);
            }
        }
    }
    assert!(
        hookgate_steps >= workflows.len(),
        "each workflow should use the action"
    );
}

fn check_hookgate_step(workflow: &Path, step: &Yaml, declared: &BTreeSet<&str>) {
    let with = step["with"]
        .as_hash()
        .unwrap_or_else(|| panic!("{}: a hookgate step without `with`", workflow.display()));
    for key in with.keys().filter_map(Yaml::as_str) {
        assert!(
            declared.contains(key),
            "{}: `{key}` is not an input of action.yml",
            workflow.display()
        );
    }
    let text = |key: &str| {
        with.get(&Yaml::String(key.to_owned()))
            .and_then(Yaml::as_str)
    };
    if text("command").unwrap_or("run") != "run" {
        return;
    }
    let file = text("deployment-file").unwrap_or("deploy.yml");
    let (Some(target), Some(phase)) = (text("target"), text("phase")) else {
        panic!("{}: a run without target and phase", workflow.display());
    };
    let output = hookgate()
        .current_dir(root())
        .args(["plan", "--file", file, "--target", target, "--phase", phase])
        .output()
        .expect("run hookgate plan");
    assert!(
        output.status.success(),
        "{}: `hookgate plan --file {file} --target {target} --phase {phase}` fails:\n{}",
        workflow.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}
