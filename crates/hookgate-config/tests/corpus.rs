//! The fuzz target's seed corpus (`fuzz/corpus/load/`), run as a normal test so every
//! `cargo test` checks that none of it makes the loader panic, plus deterministic mutations of
//! those seeds (bytes flipped, cut, repeated, spliced) for inputs no one wrote by hand. The
//! real fuzzing runs with `cargo +nightly fuzz run load` (see `fuzz/Cargo.toml`).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use hookgate_config::{Phase, load_str, plan};

fn seeds() -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/load");
    let mut seeds: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    seeds.sort();
    assert!(
        seeds.len() >= 20,
        "expected the seed corpus, found {}",
        seeds.len()
    );
    seeds
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
    for (path, bytes) in seeds() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let ok = exercise(&bytes);
        // The examples are valid and the broken files are not: the corpus means what it says.
        if name.starts_with("invalid-") {
            assert!(!ok, "{name} loaded");
        }
        loaded += usize::from(ok);
    }
    assert!(loaded >= 5, "the valid examples must load, {loaded} did");
}

/// xorshift64*: deterministic, so a failure here reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
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
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..3000 {
        let (_, seed) = &seeds[rng.below(seeds.len())];
        let mut bytes = seed.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(bytes.len() + 1);
            match rng.below(5) {
                0 if !bytes.is_empty() => {
                    let i = at.min(bytes.len() - 1);
                    bytes[i] ^= 1 << rng.below(8);
                }
                1 => bytes.truncate(at),
                2 => {
                    let token = TOKENS[rng.below(TOKENS.len())];
                    bytes.splice(at..at, token.iter().copied());
                }
                3 => {
                    let end = (at + rng.below(64)).min(bytes.len());
                    let copy = bytes[at.min(end)..end].to_vec();
                    bytes.splice(at..at, copy);
                }
                _ => {
                    let (_, other) = &seeds[rng.below(seeds.len())];
                    let from = rng.below(other.len());
                    let end = (from + rng.below(200)).min(other.len());
                    bytes.splice(at..at, other[from..end].iter().copied());
                }
            }
        }
        exercise(&bytes);
    }
}
