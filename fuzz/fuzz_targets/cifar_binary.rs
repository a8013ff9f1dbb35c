//! Fuzz target `cifar_binary`: see `biomimetic_fuzz::cifar_binary` (fuzz/src/lib.rs) for what it feeds and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| biomimetic_fuzz::cifar_binary(data));
