//! libFuzzer target `cmdline`: see `entry_points::cmdline`.
#![no_main]

#[allow(dead_code)] // each target uses one entry point
#[path = "../entry_points.rs"]
mod entry_points;

libfuzzer_sys::fuzz_target!(|data: &[u8]| entry_points::cmdline(data));
