//! Device tests: every test body runs on every device of this machine (the CPU always, CUDA
//! device 0 when the build has the `cuda` feature and the machine has a GPU).
//!
//! Each run compares with a float64 reference computed here, with the tolerance of the
//! precision (relative error `‖out − ref‖₂ / ‖ref‖₂`: f32 < 1e-5, TF32 < 1e-3, bf16 < 1e-2);
//! outputs are poisoned with NaN before each launch and checked to be fully written (every
//! value finite); inputs are random and never zero.
//!
//! When there is no CUDA device, each test prints `SKIPPED cuda:0 ...` straight to the
//! terminal's stderr (not through the test harness's capture, so it shows in a normal
//! `cargo test` run) and the CPU part still runs. With `BIOKERNELS_REQUIRE_CUDA=1` a missing
//! device fails the tests instead, so a GPU run cannot pass by skipping.

mod common;
mod conv;
mod gemm;
mod train;
