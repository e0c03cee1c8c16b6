//! Times loading (parse and validation) and planning of generated deployment files of 250 to
//! 8,000 webhooks, and prints the curve and the ratio of 2,000 to 250, which stays near 8 when
//! the work grows linearly.
//!
//! The files mix every wait mode (none, poll, callback with HMAC, repository_dispatch,
//! workflow_dispatch with a run to wait for), spread the gates over three targets chained by
//! `dependsOn`, and send a few through a blue/green strategy's `redirectTrafficAfter`.
//!
//! ```sh
//! cargo run --release -p config-bench
//! ```
#![allow(clippy::print_stdout)]

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use hookgate_config::{Phase, load_str, plan};

const SIZES: [usize; 5] = [250, 500, 1_000, 2_000, 8_000];
const TARGETS: [&str; 3] = ["dev", "staging", "prod"];

fn main() {
    println!("webhooks  file (KiB)   load+validate        plan   (median of runs)");
    let mut load_times = Vec::new();
    for size in SIZES {
        let text = generate(size);
        let runs = if size >= 8_000 { 3 } else { 7 };
        let mut loads = Vec::new();
        let mut plans = Vec::new();
        for _ in 0..runs {
            let started = Instant::now();
            let loaded = match load_str("deploy.yml", &text) {
                Ok(loaded) => loaded,
                Err(diags) => {
                    eprintln!("the generated file of {size} webhooks does not load:\n{diags}");
                    std::process::exit(1);
                }
            };
            loads.push(started.elapsed());
            let started = Instant::now();
            let mut steps = 0;
            for target in TARGETS {
                for phase in [Phase::BeforeDeployment, Phase::AfterDeployment] {
                    match plan(&loaded.file, target, phase) {
                        Ok(plan) => steps += plan.steps().count(),
                        Err(err) => {
                            eprintln!("no plan for {target}: {err}");
                            std::process::exit(1);
                        }
                    }
                }
            }
            plans.push(started.elapsed());
            assert!(steps >= size, "every webhook is planned ({steps} < {size})");
        }
        let load = median(&mut loads);
        let planned = median(&mut plans);
        load_times.push((size, load, planned));
        println!(
            "{size:>8}  {:>10.0}  {:>12.1} ms  {:>8.2} ms",
            text.len() as f64 / 1024.0,
            ms(load),
            ms(planned)
        );
    }
    let at = |n: usize| {
        load_times
            .iter()
            .find(|(size, _, _)| *size == n)
            .map(|(_, load, plan)| (ms(*load), ms(*plan)))
            .unwrap_or_default()
    };
    let ((load_250, plan_250), (load_2000, plan_2000)) = (at(250), at(2_000));
    println!(
        "2,000 / 250: load+validate {:.1}x, plan {:.1}x (8x is linear; the goal is at most 12x)",
        load_2000 / load_250.max(f64::MIN_POSITIVE),
        plan_2000 / plan_250.max(f64::MIN_POSITIVE)
    );
    println!("load+validate of 2,000 webhooks: {load_2000:.1} ms (the goal is under 200 ms)");
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ms(time: Duration) -> f64 {
    time.as_secs_f64() * 1000.0
}

/// A deployment file with `count` webhooks, each run once from one of the targets' phases.
fn generate(count: usize) -> String {
    let mut out = String::from("version: v1\nkind: kubernetes\napplication: generated\n");
    out.push_str("targets:\n");
    for (t, target) in TARGETS.iter().enumerate() {
        let _ = writeln!(
            out,
            "  {target}:\n    account: cluster-{t}\n    namespace: app-{target}"
        );
        out.push_str("    strategy: blue-green\n    constraints:\n");
        if t > 0 {
            let _ = writeln!(out, "      dependsOn: [\"{}\"]", TARGETS[t - 1]);
        }
        for (p, phase) in ["beforeDeployment", "afterDeployment"].iter().enumerate() {
            let _ = writeln!(out, "      {phase}:");
            for i in (0..count).filter(|i| i % 6 == t * 2 + p) {
                let _ = writeln!(
                    out,
                    "        - runWebhook:\n            name: hook-{i}\n            context:\n              suite: s{i}"
                );
            }
        }
    }
    out.push_str("strategies:\n  blue-green:\n    blueGreen:\n      activeService: app\n");
    out.push_str("      previewService: app-preview\n      redirectTrafficAfter:\n");
    for i in 0..count.min(4) {
        let _ = writeln!(out, "        - runWebhook:\n            name: hook-{i}");
    }
    out.push_str("manifests:\n  - path: manifests/app.yaml\nwebhooks:\n");
    for i in 0..count {
        let _ = writeln!(out, "  - name: hook-{i}");
        match i % 5 {
            0 => {
                let _ = writeln!(
                    out,
                    "    uriTemplate: \"https://hooks.example.com/{i}?env={{{{ armory.environmentName }}}}\"\n    waitFor: none\n    retryCount: 2"
                );
            }
            1 => {
                let _ = writeln!(
                    out,
                    "    method: POST\n    uriTemplate: https://changes.example.com/{i}\n    headers:\n      - key: Authorization\n        value: \"Bearer {{{{ secrets.token }}}}\"\n    bodyTemplate:\n      inline: '{{\"suite\": \"{{{{ context.suite }}}}\"}}'\n    waitFor: poll\n    poll:\n      statusUrlResolution: webhookResponse\n      statusUrlJsonPath: $.links.status\n      statusJsonPath: $.state\n      successStatuses: [DONE]\n      terminalStatuses: [FAILED]\n      interval: 10s\n    timeout: 1h\n    retryStatusCodes: [409]\n    failFastStatusCodes: [401]"
                );
            }
            2 => {
                let _ = writeln!(
                    out,
                    "    method: POST\n    uriTemplate: https://approvals.example.com/{i}\n    bodyTemplate:\n      inline: '{{\"callbackUri\": \"{{{{ callback.uri }}}}\"}}'\n    waitFor: callback\n    callback:\n      auth: hmac\n      scheme: github\n      secret: \"{{{{ secrets.hmac }}}}\"\n    timeout: 30m"
                );
            }
            3 => {
                let _ = writeln!(
                    out,
                    "    repositoryDispatch:\n      repository: org/tests-{i}\n      eventType: run-{i}\n      clientPayload:\n        callbackUri: \"{{{{ callback.uri }}}}\"\n        callbackToken: \"{{{{ callback.token }}}}\"\n    timeout: 45m"
                );
            }
            _ => {
                let _ = writeln!(
                    out,
                    "    workflowDispatch:\n      repository: org/load-{i}\n      workflow: load.yml\n      ref: main\n      inputs:\n        target: \"{{{{ armory.environmentName }}}}\"\n    waitFor: workflowRun\n    timeout: 30m"
                );
            }
        }
    }
    out
}
