//! The benchmarks' common baseline: every layer of an image through the standard
//! decompressors and `sha256sum`, as many at once as asked, checked against the diff_ids.

use super::image_builder::BuiltImage;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Wall time of `gzip -dc | sha256sum` / `zstd -dc | sha256sum` / `sha256sum` over every layer.
pub fn decompress_and_hash(image: &BuiltImage, parallelism: usize) -> Duration {
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..parallelism {
            s.spawn(|| {
                while let Some(layer) = image.layers.get(next.fetch_add(1, Ordering::SeqCst)) {
                    let decompress = match layer.media_type.rsplit(['+', '.']).next() {
                        Some("gzip") => "gzip -dc",
                        Some("zstd") => "zstd -dc",
                        _ => "cat",
                    };
                    let out = Command::new("sh")
                        .arg("-c")
                        .arg(format!("{decompress} < \"$BLOB\" | sha256sum"))
                        .env("BLOB", &layer.path)
                        .output()
                        .unwrap();
                    let sum = String::from_utf8_lossy(&out.stdout);
                    if !out.status.success()
                        || !layer
                            .diff_id
                            .ends_with(sum.split_whitespace().next().unwrap_or("-"))
                    {
                        failures.lock().unwrap().push(layer.digest.clone());
                    }
                }
            });
        }
    });
    let wall = start.elapsed();
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "baseline tools disagree with diff_ids: {failures:?}"
    );
    wall
}

/// The median of some timings.
pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}
