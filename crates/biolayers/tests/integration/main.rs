//! Integration tests of `biolayers`, one test binary: each file below is a module (it was a
//! binary of its own; compiling and linking ~50 test binaries was most of CI's time on 2 cores).
//! Run one file's tests with `cargo test -p biolayers --test integration <file>::`.

mod bio;
mod bionet;
mod conv_layers;
mod converter;
mod filters;
mod gpu_training;
mod interop;
mod layers;
mod matrix_masks;
mod optim;
mod rnn;
