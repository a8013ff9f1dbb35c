//! Fuzz target `config_toml`: see `biomimetic_fuzz::config_toml` (fuzz/src/lib.rs) for what it feeds and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| biomimetic_fuzz::config_toml(data));
