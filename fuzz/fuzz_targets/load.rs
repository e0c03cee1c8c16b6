//! Feeds arbitrary bytes to the deployment-file loader: whatever the input, loading and
//! rendering the diagnostics must return, never panic, overflow the stack or run away.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match hookgate_config::load_str("fuzz.yml", text) {
        Ok(loaded) => {
            let _ = loaded.warnings.to_string();
            for target in loaded.file.targets.keys() {
                for phase in [
                    hookgate_config::Phase::BeforeDeployment,
                    hookgate_config::Phase::AfterDeployment,
                    hookgate_config::Phase::Strategy,
                ] {
                    let _ = hookgate_config::plan(&loaded.file, target, phase);
                }
            }
        }
        Err(diagnostics) => {
            assert!(diagnostics.has_errors(), "a failed load must say why");
            let _ = diagnostics.to_string();
            let _ = diagnostics.github_annotations();
        }
    }
});
