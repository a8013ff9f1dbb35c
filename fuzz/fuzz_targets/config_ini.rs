//! Fuzz target `config_ini`: see `biomimetic_fuzz::config_ini` (fuzz/src/lib.rs) for what it feeds and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| biomimetic_fuzz::config_ini(data));
