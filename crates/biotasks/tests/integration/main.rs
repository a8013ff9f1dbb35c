//! Integration tests of `biotasks`, one test binary: each file below is a module (it was a
//! binary of its own; compiling and linking ~50 test binaries was most of CI's time on 2 cores).
//! Run one file's tests with `cargo test -p biotasks --test integration <file>::`.

mod augment_reference;
mod checkpoint;
mod cifar10g;
mod data;
mod fit;
mod invariants;
mod perturb_reference;
mod plot;
mod python_reference;
