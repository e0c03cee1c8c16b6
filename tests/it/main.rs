//! Tests that cross crates: they run the real `hookgate` binary, real relays on real sockets, a
//! real SQLite file and the machine's PostgreSQL. One test binary keeps link times down.

mod action;
mod app;
mod callback;
mod common;
mod config;
mod engine;
mod examples;
mod fake_github;
mod faults;
mod github;
mod readme;
mod relay;
mod support;
