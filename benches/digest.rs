//! Benchmark: `bootseal::digest::compute` on the realistic Debian-based image against, in the
//! same run, (a) decompress + sha256 of every layer with standard tools (`gzip -dc | sha256sum`,
//! `zstd -dc | sha256sum`, `sha256sum`), as many at once as there are CPUs, and (b) composefs-oci
//! 0.9.0's own pipeline (pull from the OCI layout, create_filesystem, transform_for_boot,
//! compute_image_id). Reports wall times, the ratios (targets: <= 1.5x (a), <= 0.6x (b)) and
//! the peak RSS (VmHWM) of a child process that only computes our digest (target <= 256 MB).
//!
//! Run: `cargo bench --bench digest`. The image is generated on first use (see
//! tests/it/common/realistic.rs) and cached under the target directory.

#[path = "../tests/it/common/mod.rs"]
mod common;

use std::io::Read;
use std::process::Command;
use std::time::{Duration, Instant};

use bootseal::digest::DigestOptions;
use common::image_builder::BuiltImage;

const CHILD_FLAG: &str = "--bootseal-child-digest";

fn vmhwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Child mode: compute our digest, print `digest seconds vmhwm_kib`.
fn child(dir: &str, tag: &str) {
    let start = Instant::now();
    let layers = common::layout_input::layer_inputs(std::path::Path::new(dir), tag);
    let report = bootseal::digest::compute(
        &format!("oci:{dir}:{tag}"),
        layers,
        &DigestOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let secs = start.elapsed().as_secs_f64();
    println!("{} {secs} {}", report.digest_hex, vmhwm_kib());
}

struct Ours {
    digest: String,
    wall: Duration,
    vmhwm_kib: u64,
}

fn run_ours(image: &BuiltImage) -> Ours {
    let exe = std::env::current_exe().unwrap();
    let start = Instant::now();
    let out = Command::new(exe)
        .arg(CHILD_FLAG)
        .arg(&image.dir)
        .arg(&image.tag)
        .output()
        .unwrap();
    let wall = start.elapsed();
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut f = text.split_whitespace();
    Ours {
        digest: f.next().unwrap().to_string(),
        wall: {
            let _child_secs: f64 = f.next().unwrap().parse().unwrap();
            wall
        },
        vmhwm_kib: f.next().unwrap().parse().unwrap(),
    }
}

/// (b): composefs-oci's pipeline, timed.
fn run_reference(image: &BuiltImage) -> (String, Duration) {
    let start = Instant::now();
    let digest = common::reference::reference_digest_plain(image, 1);
    (digest, start.elapsed())
}

fn warm_page_cache(image: &BuiltImage) {
    let mut buf = vec![0u8; 1 << 20];
    for l in &image.layers {
        let mut f = std::fs::File::open(&l.path).unwrap();
        while f.read(&mut buf).unwrap() > 0 {}
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == CHILD_FLAG) {
        child(&args[i + 1], &args[i + 2]);
        return;
    }
    for tool in ["gzip", "zstd", "sha256sum"] {
        common::require_tool(tool);
    }
    let parallelism = std::thread::available_parallelism().map_or(1, |n| n.get());
    let realistic = common::realistic::realistic_image();
    let image = &realistic.image;
    let compressed: u64 = image.layers.iter().map(|l| l.size).sum();
    warm_page_cache(image);

    const REPS: usize = 3;
    let mut ours_runs = Vec::new();
    let mut tools_runs = Vec::new();
    for _ in 0..REPS {
        ours_runs.push(run_ours(image));
        tools_runs.push(common::baseline::decompress_and_hash(image, parallelism));
    }
    let (reference, reference_time) = run_reference(image);

    let digest = &ours_runs[0].digest;
    assert!(
        ours_runs.iter().all(|r| &r.digest == digest),
        "our digest is not stable across runs"
    );
    assert_eq!(
        digest, &reference,
        "our digest differs from composefs-oci's"
    );
    let ours_time = common::baseline::median(ours_runs.iter().map(|r| r.wall).collect());
    let tools_time = common::baseline::median(tools_runs);
    let peak_kib = ours_runs.iter().map(|r| r.vmhwm_kib).max().unwrap();

    println!(
        "bootseal digest benchmark ({} layers, {:.1} MB compressed, {} CPUs, median of {REPS})",
        image.layers.len(),
        compressed as f64 / 1e6,
        parallelism
    );
    println!("  digest (V1)                        {digest}");
    println!(
        "  bootseal digest                    {:>8.2} s",
        ours_time.as_secs_f64()
    );
    println!(
        "  (a) gzip/zstd -dc | sha256sum      {:>8.2} s   ratio {:.2}x (target <= 1.5x)",
        tools_time.as_secs_f64(),
        ours_time.as_secs_f64() / tools_time.as_secs_f64()
    );
    println!(
        "  (b) composefs-oci pipeline         {:>8.2} s   ratio {:.2}x (target <= 0.6x)",
        reference_time.as_secs_f64(),
        ours_time.as_secs_f64() / reference_time.as_secs_f64()
    );
    println!(
        "  peak RSS (VmHWM) of bootseal       {:>8.1} MB (target <= 256 MB)",
        peak_kib as f64 / 1024.0
    );
}
