//! Feeds arbitrary bytes, read as a callback's headers and raw body, to every check the relay
//! and the action make on a callback from outside (see `callback_exercise.rs`): none may panic,
//! and they must agree with each other.

#![no_main]

#[path = "callback_exercise.rs"]
mod callback_exercise;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    callback_exercise::exercise(data);
});
