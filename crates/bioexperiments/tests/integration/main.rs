//! Integration tests of `bioexperiments`, one test binary: each file below is a module (it was a
//! binary of its own; compiling and linking ~50 test binaries was most of CI's time on 2 cores).
//! Run one file's tests with `cargo test -p bioexperiments --test integration <file>::`.

mod bionet;
mod common;
mod fuzz_smoke;
mod golden;
mod leftovers;
mod reproduce;
mod rnn_memory;
mod rnn_runs;
mod shards;
mod stats_reference;
mod synaptic_diversity;
mod torch_fixture;
mod vgg16_schizo;
