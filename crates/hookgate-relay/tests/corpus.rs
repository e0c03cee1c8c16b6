//! The `callback` fuzz target's seed corpus (`fuzz/corpus/callback/`), run as a normal test with
//! the target's own checks (`fuzz/fuzz_targets/callback_exercise.rs`): no seed may panic the
//! checks a callback from outside goes through, and the relay and the action must agree on each.
//! Deterministic mutations of the seeds add inputs no one wrote by hand. The real fuzzing runs
//! with `cargo +nightly fuzz run callback` (see `fuzz/Cargo.toml`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../../fuzz/fuzz_targets/callback_exercise.rs"]
mod callback_exercise;
#[path = "../../../fuzz/seed_corpus.rs"]
mod seed_corpus;

use std::path::Path;

use callback_exercise::{Passed, exercise};
use seed_corpus::Mutator;

fn seeds() -> Vec<(String, Vec<u8>)> {
    seed_corpus::read(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/callback"),
        20,
    )
}

#[test]
fn every_seed_passes_exactly_the_checks_its_name_promises() {
    for (name, bytes) in seeds() {
        let passed = exercise(&bytes);
        let verdict = !matches!(
            name.as_str(),
            "body-array"
                | "body-success-string"
                | "body-no-success"
                | "body-too-deep"
                | "body-lone-surrogate"
                | "body-invalid-utf8"
                | "body-huge-number"
                | "body-trailing"
                | "body-empty"
                | "body-reserved-member-name"
                | "body-reserved-raw-value"
                | "body-final-not-boolean"
                | "body-outputs-not-object"
        );
        let expected = Passed {
            verdict,
            standard: name == "standard-valid" || name == "standard-two-signatures",
            // Uppercase hex is refused by choice (see hookgate-auth's `github` module).
            github: name == "github-valid",
            token: name == "bearer-valid" || name == "bearer-aud-array",
        };
        assert_eq!(passed, expected, "{name}");
    }
}

#[test]
fn mutated_seeds_never_panic_nor_disagree() {
    const TOKENS: &[&[u8]] = &[
        b"{",
        b"}",
        b"[",
        b"]",
        b"\"",
        b"\\u",
        b"\\ud800",
        b",",
        b":",
        b"\n",
        b"\n\n",
        b" ",
        b"true",
        b"null",
        b"1e400",
        b"\"success\":",
        b"\xff",
        b"\xc3\xa9",
        b".",
        b"=",
        b"v1,",
        b"sha256=",
        b"Bearer ",
    ];
    let seeds = seeds();
    let mut mutator = Mutator::new(0x2545_f491_4f6c_dd1d, &seeds, TOKENS);
    for _ in 0..5000 {
        let bytes = mutator.input();
        // Panics (and disagreements, which the exercise asserts) fail the test with the input.
        let outcome = std::panic::catch_unwind(|| exercise(&bytes));
        assert!(
            outcome.is_ok(),
            "input: {:?}",
            String::from_utf8_lossy(&bytes)
        );
    }
}
