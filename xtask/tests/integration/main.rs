//! Integration tests of `xtask`, one test binary: each file below is a module (it was a
//! binary of its own; compiling and linking ~50 test binaries was most of CI's time on 2 cores).
//! Run one file's tests with `cargo test -p xtask --test integration <file>::`.

mod cli_filters;
mod cli_interrupt;
mod cli_leftovers;
mod cli_mask;
mod cli_rnn_runs;
mod cli_task;
#[cfg(unix)]
#[path = "../../../crates/bioexperiments/tests/integration/common/mod.rs"]
mod common;
