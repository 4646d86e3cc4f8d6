//! Benchmark: `bootseal sync` of a repository of 8 bootc tags that share all layers but their
//! top one, against 8 separate `bootseal seal` runs of the same tags, in the same run and the
//! same loopback docker-registry (target: sync <= 0.4x). Also `sync --jobs 2` and
//! `sync --layer-cache-mib 0`, which reads every layer for every tag, to show what the layer
//! cache itself saves, and each process's peak RSS (what the cache costs in memory).
//!
//! The base: the small bootc test image (real Debian kernel, stub, systemd-boot) plus generated
//! layers of 8,000 files (~530 MB unpacked, 4 KiB to 128 KiB each), so the shared layers
//! dominate as in real OS images (a Fedora bootc base is ~1.7 GB in ~70 layers).
//! Run: `cargo bench --bench sync`. The layout is generated once and cached under target/.

#[path = "../tests/it/common/mod.rs"]
mod common;
#[path = "support/measure.rs"]
mod measure;

use common::image_builder::{BuiltImage, BuiltLayer, Compression, E, OciImage, TarLayer};
use common::registry::{Registry, Variant};
use std::process::Command;
use std::time::Instant;

const TAGS: usize = 8;
const SYNTHETIC_LAYERS: usize = 8;
const FILES_PER_LAYER: usize = 1000;

/// 4 KiB to 128 KiB, ~66 KiB on average: real trees are mostly small files.
fn file_size(file: usize) -> usize {
    4096 * (1 + file * 37 % 32)
}

/// Deterministic, moderately compressible bytes (text-like: a small alphabet).
fn content(layer: usize, file: usize) -> Vec<u8> {
    let mut state = (layer as u64 * 7919 + file as u64 * 104_729) | 1;
    (0..file_size(file))
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            b"abcdefghijklmnop \n"[(state % 18) as usize]
        })
        .collect()
}

/// The 8 tags' images in one layout (`t0`..`t7`), sharing every layer but the top one.
fn bench_images() -> Vec<BuiltImage> {
    let dir = common::cache_dir().join("sync-bench-v2");
    let tags: Vec<String> = (0..TAGS).map(|i| format!("t{i}")).collect();
    if dir.join("complete").exists() {
        return tags.iter().map(|t| BuiltImage::load(&dir, t)).collect();
    }
    let _ = std::fs::remove_dir_all(&dir);
    let (mut base, _, _, _) = common::bootc_image::layers(&dir, Vec::new());
    for l in 0..SYNTHETIC_LAYERS {
        let mut entries = vec![E::dir("usr/share"), E::dir(&format!("usr/share/gen{l}"))];
        for f in 0..FILES_PER_LAYER {
            entries.push(E::file(&format!("usr/share/gen{l}/f{f}"), content(l, f)));
        }
        base = base.layer(TarLayer::with(entries), Compression::Gzip);
    }
    let shared: Vec<BuiltLayer> = base.write(&dir, "base").layers;
    let mut images = Vec::new();
    for (i, tag) in tags.iter().enumerate() {
        let top = OciImage::new()
            .layer(
                TarLayer::with([E::dir("etc"), E::file("etc/build-id", format!("{i}\n"))]),
                Compression::Gzip,
            )
            .write(&dir, "top")
            .layers;
        let mut layers = shared.clone();
        layers.extend(top);
        images.push(OciImage::new().write_metadata(&dir, tag, layers));
    }
    common::image_builder::write_index(&dir, &images.iter().collect::<Vec<_>>());
    std::fs::write(dir.join("complete"), b"").unwrap();
    tags.iter().map(|t| BuiltImage::load(&dir, t)).collect()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() {
    common::require_tool("skopeo");
    let images = bench_images();
    let tmp = common::scratch();
    let keys = common::keypair(tmp.path(), "db", 2048);
    let reg = Registry::start(Variant::Plain);
    for img in &images {
        reg.push_layout(&img.oci_ref(), &format!("bench/app:{}", img.tag));
    }
    let key_args = |c: &mut Command| {
        c.arg("--key")
            .arg(&keys.key)
            .arg("--cert")
            .arg(&keys.cert)
            .args(["--tls-verify=false", "--quiet"]);
    };
    let load_before = loadavg();

    let start = Instant::now();
    let mut seal_rss = 0;
    for img in &images {
        let mut c = Command::new(env!("CARGO_BIN_EXE_bootseal"));
        c.env("SOURCE_DATE_EPOCH", "1700000000")
            .args(["seal", "--from"]);
        c.arg(reg.image(&format!("bench/app:{}", img.tag)))
            .arg("--to")
            .arg(reg.image(&format!("bench/separate:{}", img.tag)));
        key_args(&mut c);
        seal_rss = seal_rss.max(measure::timed(&mut c).1);
    }
    let separate = start.elapsed();

    let sync = |to: &str, extra: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_bootseal"));
        c.env("SOURCE_DATE_EPOCH", "1700000000")
            .args(["sync", "--from"]);
        c.arg(reg.image("bench/app")).arg("--to").arg(reg.image(to));
        key_args(&mut c);
        c.args(extra);
        let (wall, rss, _) = measure::timed(&mut c);
        (wall, rss)
    };
    let (synced, synced_rss) = sync("bench/synced", &[]);
    let (parallel, parallel_rss) = sync("bench/parallel", &["--jobs", "2"]);
    let (uncached, uncached_rss) = sync("bench/uncached", &["--layer-cache-mib", "0"]);
    let (again, _) = sync("bench/synced", &[]);
    let load_after = loadavg();

    // Same bytes either way.
    for img in &images {
        let a = reg.raw_manifest(&format!("bench/separate:{}", img.tag));
        let b = reg.raw_manifest(&format!("bench/synced:{}", img.tag));
        assert_eq!(a, b, "{}: sync and seal differ", img.tag);
        let c = reg.raw_manifest(&format!("bench/parallel:{}", img.tag));
        assert_eq!(a, c, "{}: sync --jobs 2 and seal differ", img.tag);
    }
    let compressed: u64 = images[0].layers.iter().map(|l| l.size).sum();
    println!(
        "bootseal sync benchmark: {TAGS} tags of {} layers ({:.1} MB compressed each, all but the top layer shared), loopback docker-registry, {} CPUs",
        images[0].layers.len(),
        compressed as f64 / 1e6,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("load average before: {load_before}; after: {load_after}");
    let s = separate.as_secs_f64();
    let mb = |kib: u64| kib as f64 / 1024.0;
    println!(
        "{TAGS} separate `bootseal seal` runs: {s:.2} s; peak RSS {:.1} MB (largest run)",
        mb(seal_rss)
    );
    println!(
        "`bootseal sync` (layer cache): {:.2} s = {:.2}x (target <= 0.4x); peak RSS {:.1} MB",
        synced.as_secs_f64(),
        synced.as_secs_f64() / s,
        mb(synced_rss)
    );
    println!(
        "`bootseal sync --jobs 2` (layer cache): {:.2} s = {:.2}x; peak RSS {:.1} MB",
        parallel.as_secs_f64(),
        parallel.as_secs_f64() / s,
        mb(parallel_rss)
    );
    println!(
        "`bootseal sync --layer-cache-mib 0`: {:.2} s = {:.2}x; peak RSS {:.1} MB",
        uncached.as_secs_f64(),
        uncached.as_secs_f64() / s,
        mb(uncached_rss)
    );
    println!(
        "second `bootseal sync` over the unchanged repository: {:.2} s = {:.3}x",
        again.as_secs_f64(),
        again.as_secs_f64() / s
    );
}
