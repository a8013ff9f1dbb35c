//! Fuzz target `image_decode`: see `biomimetic_fuzz::image_decode` (fuzz/src/lib.rs) for what it feeds and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| biomimetic_fuzz::image_decode(data));
