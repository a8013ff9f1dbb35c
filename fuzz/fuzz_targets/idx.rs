//! Fuzz target `idx`: see `biomimetic_fuzz::idx` (fuzz/src/lib.rs) for what it feeds and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| biomimetic_fuzz::idx(data));
