//! Fuzz target `checkpoint`: see `biomimetic_fuzz::checkpoint` (fuzz/src/lib.rs) for what it feeds and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| biomimetic_fuzz::checkpoint(data));
