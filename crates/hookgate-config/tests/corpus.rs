//! The fuzz target's seed corpus (`fuzz/corpus/load/`), run as a normal test so every
//! `cargo test` checks that none of it makes the loader panic, plus deterministic mutations of
//! those seeds (bytes flipped, cut, repeated, spliced) for inputs no one wrote by hand. The
//! real fuzzing runs with `cargo +nightly fuzz run load` (see `fuzz/Cargo.toml`).

#![allow(clippy::unwrap_used)]

#[path = "../../../fuzz/seed_corpus.rs"]
mod seed_corpus;

use std::path::Path;

use hookgate_config::{Phase, load_str, plan};
use seed_corpus::Mutator;

fn seeds() -> Vec<(String, Vec<u8>)> {
    seed_corpus::read(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/load"),
        20,
    )
}

/// What the fuzz target does with one input; returns whether it loaded.
fn exercise(bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    match load_str("fuzz.yml", text) {
        Ok(loaded) => {
            let _ = loaded.warnings.to_string();
            for target in loaded.file.targets.keys() {
                for phase in [
                    Phase::BeforeDeployment,
                    Phase::AfterDeployment,
                    Phase::Strategy,
                ] {
                    let _ = plan(&loaded.file, target, phase);
                }
            }
            true
        }
        Err(diagnostics) => {
            assert!(
                diagnostics.has_errors(),
                "a failed load must say why: {text:?}"
            );
            assert!(!diagnostics.to_string().is_empty());
            assert!(!diagnostics.github_annotations().is_empty());
            false
        }
    }
}

#[test]
fn every_seed_loads_or_fails_with_errors() {
    let mut loaded = 0;
    for (name, bytes) in seeds() {
        let ok = exercise(&bytes);
        // The examples are valid and the broken files are not: the corpus means what it says.
        if name.starts_with("invalid-") {
            assert!(!ok, "{name} loaded");
        }
        loaded += usize::from(ok);
    }
    assert!(loaded >= 5, "the valid examples must load, {loaded} did");
}

#[test]
fn mutated_seeds_never_panic() {
    const TOKENS: &[&[u8]] = &[
        b"{{",
        b"}}",
        b": ",
        b"- ",
        b"\n",
        b"  ",
        b"[",
        b"]",
        b"{",
        b"}",
        b"&a ",
        b"*a",
        b"'",
        b"\"",
        b"runWebhook:",
        b"dependsOn:",
        b"waitFor: poll",
        b"\t",
        b"#",
        b"? ",
        b"|",
        b">-",
    ];
    let seeds = seeds();
    let mut mutator = Mutator::new(0x9e37_79b9_7f4a_7c15, &seeds, TOKENS);
    for _ in 0..3000 {
        let bytes = mutator.input();
        exercise(&bytes);
    }
}
