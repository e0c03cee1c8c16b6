//! A fuzz target's seed corpus for the tests that run it in `cargo test` (`tests/corpus.rs` of
//! hookgate-config and of hookgate-relay): the seeds, and deterministic mutations of them (bytes
//! flipped, cut and repeated, tokens of the input's language inserted, pieces of other seeds
//! spliced in). The generator is seeded, so a failing input reproduces.

use std::path::Path;

/// The seeds in `dir` by file name, sorted; there must be at least `at_least`.
pub fn read(dir: &Path, at_least: usize) -> Vec<(String, Vec<u8>)> {
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap_or_else(|err| panic!("reading {}: {err}", dir.display()))
        .map(|entry| {
            let path = entry.expect("a directory entry").path();
            let name = path
                .file_name()
                .expect("a file name")
                .to_string_lossy()
                .into_owned();
            let bytes = std::fs::read(&path)
                .unwrap_or_else(|err| panic!("reading {}: {err}", path.display()));
            (name, bytes)
        })
        .collect();
    seeds.sort();
    assert!(
        seeds.len() >= at_least,
        "expected the seed corpus in {}, found {} seeds",
        dir.display(),
        seeds.len()
    );
    seeds
}

/// Makes inputs from `seeds`, with `tokens` to insert.
pub struct Mutator<'a> {
    state: u64,
    seeds: Vec<&'a [u8]>,
    tokens: &'a [&'a [u8]],
}

impl<'a> Mutator<'a> {
    /// `seeds` as `read` returns them.
    pub fn new(state: u64, seeds: &'a [(String, Vec<u8>)], tokens: &'a [&'a [u8]]) -> Self {
        assert!(!seeds.is_empty() && !tokens.is_empty() && state != 0);
        Self {
            state,
            seeds: seeds.iter().map(|(_, bytes)| bytes.as_slice()).collect(),
            tokens,
        }
    }

    /// xorshift64*.
    fn next(&mut self) -> u64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// A seed with one to four mutations.
    pub fn input(&mut self) -> Vec<u8> {
        let seed = self.below(self.seeds.len());
        let mut bytes = self.seeds[seed].to_vec();
        for _ in 0..1 + self.below(4) {
            let at = self.below(bytes.len() + 1);
            match self.below(5) {
                0 if !bytes.is_empty() => {
                    let i = at.min(bytes.len() - 1);
                    bytes[i] ^= 1 << self.below(8);
                }
                1 => bytes.truncate(at),
                2 => {
                    let token = self.below(self.tokens.len());
                    let token = self.tokens[token];
                    bytes.splice(at..at, token.iter().copied());
                }
                3 => {
                    let end = (at + self.below(64)).min(bytes.len());
                    let copy = bytes[at.min(end)..end].to_vec();
                    bytes.splice(at..at, copy);
                }
                _ => {
                    let other = self.below(self.seeds.len());
                    let other = self.seeds[other];
                    let from = self.below(other.len());
                    let end = (from + self.below(200)).min(other.len());
                    bytes.splice(at..at, other[from..end].iter().copied());
                }
            }
        }
        bytes
    }
}
