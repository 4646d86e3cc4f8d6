//! libFuzzer target `erofs_writer`: see `entry_points::erofs_writer`.
#![no_main]

#[allow(dead_code)] // each target uses one entry point
#[path = "../entry_points.rs"]
mod entry_points;

libfuzzer_sys::fuzz_target!(|data: &[u8]| entry_points::erofs_writer(data));
