//! Integration tests of `biomask`, one test binary: each file below is a module (it was a
//! binary of its own; compiling and linking ~50 test binaries was most of CI's time on 2 cores).
//! Run one file's tests with `cargo test -p biomask --test integration <file>::`.

mod api;
mod matrix;
mod numpy_fixtures;
mod properties;
mod reference_tables;
