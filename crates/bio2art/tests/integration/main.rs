//! Integration tests of `bio2art`, one test binary: each file below is a module (it was a
//! binary of its own; compiling and linking ~50 test binaries was most of CI's time on 2 cores).
//! Run one file's tests with `cargo test -p bio2art --test integration <file>::`.

mod errors;
mod invariants;
mod python_mode;
mod topology;
