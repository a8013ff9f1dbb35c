//! Integration tests of `bioautograd`, one test binary: each file below is a module (it was a
//! binary of its own; compiling and linking ~50 test binaries was most of CI's time on 2 cores).
//! Run one file's tests with `cargo test -p bioautograd --test integration <file>::`.

mod device_ops;
mod errors_and_api;
mod gradcheck;
mod numpy_reference;
mod rnn_fused;
