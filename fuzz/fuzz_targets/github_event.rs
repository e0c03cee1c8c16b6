//! Feeds arbitrary bytes to the App's `deployment_protection_rule` parser (what a delivery with
//! a valid signature becomes): it must answer a gate, nothing, or why, and never panic.

#![no_main]

use std::time::{Duration, SystemTime};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    if let Ok(Some(gate)) = hookgate_app::parse_event("fuzz", data, now, Duration::from_secs(3600)) {
        assert!(gate.run_id > 0);
        assert!(!gate.repository.is_empty() && !gate.environment.is_empty());
    }
});
