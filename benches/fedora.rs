//! Benchmark: a Fedora-size image (tests/it/common/fedora_scale.rs: ~215,000 entries over 65
//! layers, ~2.5 GB unpacked, gzip and zstd) through `bootseal digest` and `bootseal seal`
//! (OCI layout to OCI layout), against, in the same run:
//! - the floor: every layer through `gzip -dc`/`zstd -dc` | `sha256sum`, as many at once as
//!   there are CPUs (targets: digest <= 0.70x, seal <= 0.75x);
//! - composefs-oci 0.9.0's own pipeline (pull into a repository, create_filesystem, boot
//!   transform, compute_image_id), in a child process so its peak RSS is its own (target for
//!   ours: <= 300 MB, at most half of it).
//!
//! Every process's peak RSS is its VmHWM (benches/support/measure.rs). The digest's own phase
//! timings (`digest --json`) are printed as the breakdown. `sync --jobs 2` of two tags of the
//! image (sharing every layer but a small top one) shows what the layer cache holds.
//!
//! Run: `cargo bench --bench fedora`. The image is generated on first use and cached under the
//! target directory (about 1.2 GB).

#[path = "../tests/it/common/mod.rs"]
mod common;
#[path = "support/measure.rs"]
mod measure;

use common::image_builder::{BuiltImage, Compression, E, OciImage, TarLayer};
use std::process::Command;
use std::time::Duration;

const REFERENCE_CHILD: &str = "--bootseal-reference-child";
const REPS: usize = 3;

fn bootseal() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bootseal"));
    c.env("SOURCE_DATE_EPOCH", "1700000000");
    c
}

/// A second tag sharing every layer, plus a small top layer, for the sync figure.
fn second_tag(image: &BuiltImage) -> BuiltImage {
    let dir = image.dir.join("sync-layout");
    if dir.join("complete").exists() {
        return BuiltImage::load(&dir, "b");
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    let mut layers = Vec::new();
    for l in &image.layers {
        let target = dir
            .join("blobs/sha256")
            .join(l.digest.trim_start_matches("sha256:"));
        std::fs::hard_link(&l.path, &target).unwrap();
        let mut l = l.clone();
        l.path = target;
        layers.push(l);
    }
    let a = OciImage::new().write_metadata(&dir, "a", layers.clone());
    let top = OciImage::new()
        .layer(
            TarLayer::with([E::dir("etc"), E::file("etc/build-id", "b\n")]),
            Compression::Gzip,
        )
        .write(&dir, "top")
        .layers;
    layers.extend(top);
    let b = OciImage::new().write_metadata(&dir, "b", layers);
    common::image_builder::write_index(&dir, &[&a, &b]);
    std::fs::write(dir.join("complete"), b"").unwrap();
    b
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn mb(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == REFERENCE_CHILD) {
        let image = BuiltImage::load(std::path::Path::new(&args[i + 1]), &args[i + 2]);
        println!("{}", common::reference::reference_digest_plain(&image, 1));
        return;
    }
    for tool in ["gzip", "zstd", "sha256sum", "openssl"] {
        common::require_tool(tool);
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let image = common::fedora_scale::fedora_scale_image();
    let compressed: u64 = image.layers.iter().map(|l| l.size).sum();
    let tmp = common::scratch();
    let keys = common::keypair(tmp.path(), "db", 2048);

    let (mut floor, mut digest, mut seal) = (vec![], vec![], vec![]);
    let (mut digest_peak, mut seal_peak) = (0, 0);
    let mut report = serde_json::Value::Null;
    for rep in 0..REPS {
        floor.push(common::baseline::decompress_and_hash(&image, cpus));
        let (wall, rss, out) =
            measure::timed(bootseal().args(["digest", "--json"]).arg(image.oci_ref()));
        report = serde_json::from_str(&out).unwrap();
        digest.push(wall);
        digest_peak = digest_peak.max(rss);
        let out_dir = tmp.path().join(format!("sealed{rep}"));
        let (wall, rss, _) = measure::timed(
            bootseal()
                .args(["seal", "--quiet", "--allow-section-overlap", "--from"])
                .arg(image.oci_ref())
                .arg("--to")
                .arg(format!("oci:{}:sealed", out_dir.display()))
                .arg("--key")
                .arg(&keys.key)
                .arg("--cert")
                .arg(&keys.cert),
        );
        seal.push(wall);
        seal_peak = seal_peak.max(rss);
        let _ = std::fs::remove_dir_all(&out_dir);
    }
    let (reference_wall, reference_peak, reference_out) = measure::timed(
        Command::new(std::env::current_exe().unwrap())
            .arg(REFERENCE_CHILD)
            .arg(&image.dir)
            .arg(&image.tag),
    );
    assert_eq!(
        reference_out.trim(),
        report["digest"].as_str().unwrap(),
        "our digest differs from composefs-oci's"
    );

    let second = second_tag(&image);
    let sync_out = tmp.path().join("synced");
    let (sync_wall, sync_peak, _) = measure::timed(
        bootseal()
            .args(["sync", "--jobs", "2", "--allow-section-overlap", "--from"])
            .arg(format!("oci:{}", second.dir.display()))
            .arg("--to")
            .arg(format!("oci:{}", sync_out.display()))
            .arg("--key")
            .arg(&keys.key)
            .arg("--cert")
            .arg(&keys.cert),
    );

    let median = common::baseline::median;
    let (floor, digest, seal) = (median(floor), median(digest), median(seal));
    let t = &report["timings_ms"];
    println!(
        "bootseal Fedora-scale benchmark ({} layers, {} generated entries, {:.2} GB compressed, {:.2} GB unpacked, {cpus} CPUs, median of {REPS})",
        image.layers.len(),
        common::fedora_scale::generated_entries(&image),
        compressed as f64 / 1e9,
        report["uncompressed_bytes"].as_u64().unwrap() as f64 / 1e9,
    );
    println!("  digest (V1) {}", report["digest"].as_str().unwrap());
    println!(
        "  floor: gzip/zstd -dc | sha256sum   {:>7.2} s",
        secs(floor)
    );
    println!(
        "  bootseal digest                    {:>7.2} s   {:.2}x floor (target <= 0.70x)   {:.2}x composefs-oci   peak RSS {:.0} MB",
        secs(digest),
        secs(digest) / secs(floor),
        secs(digest) / secs(reference_wall),
        mb(digest_peak)
    );
    println!(
        "      phases of the last run: layers {} ms, transforms {} ms, EROFS {} ms, total {} ms",
        t["layers"], t["transforms"], t["erofs"], t["total"]
    );
    println!(
        "  bootseal seal oci->oci             {:>7.2} s   {:.2}x floor (target <= 0.75x)   peak RSS {:.0} MB",
        secs(seal),
        secs(seal) / secs(floor),
        mb(seal_peak)
    );
    println!(
        "  composefs-oci 0.9.0 pipeline       {:>7.2} s   peak RSS {:.0} MB (ours: {:.2}x of it)",
        secs(reference_wall),
        mb(reference_peak),
        digest_peak.max(seal_peak) as f64 / reference_peak as f64
    );
    println!(
        "  bootseal sync --jobs 2, 2 tags     {:>7.2} s   peak RSS {:.0} MB",
        secs(sync_wall),
        mb(sync_peak)
    );
}
