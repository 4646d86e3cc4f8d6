//! Benchmark: `bootseal seal` of a generated image of >= 60 layers and >= 500 MB, OCI layout ->
//! OCI layout and from a loopback docker-registry to another repository of it, against, in the
//! same run, (a) decompress + sha256 of the same layers with standard tools (as many at once as
//! there are CPUs; target: seal oci -> oci <= 1.3x) and (b) `skopeo copy` of the same image to
//! another repository (time and bytes moved). Peak RSS of the seal processes is read with
//! wait4(2) (target <= 160 MB).
//!
//! Run: `cargo bench --bench seal`. The image is generated on first use from the realistic
//! Debian-based test image (tests/it/common/realistic.rs) plus small layers, cached under target/.

#[path = "../tests/it/common/mod.rs"]
mod common;
#[path = "support/measure.rs"]
mod measure;

use common::image_builder::{BuiltImage, Compression, E, OciImage, TarLayer};
use common::registry::{Registry, Variant};
use std::process::Command;
use std::time::Instant;

const EXTRA_LAYERS: usize = 30;

/// The realistic image's layers plus systemd-boot and small layers, as one 60+ layer image.
fn bench_image() -> BuiltImage {
    let realistic = common::realistic::realistic_image();
    let dir = common::cache_dir().join("seal-bench");
    if dir.join("complete").exists() {
        return BuiltImage::load(&dir, "bench");
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    let mut layers = Vec::new();
    for l in &realistic.image.layers {
        let target = dir
            .join("blobs/sha256")
            .join(l.digest.trim_start_matches("sha256:"));
        std::fs::copy(&l.path, &target).unwrap();
        let mut l = l.clone();
        l.path = target;
        layers.push(l);
    }
    let mut extra = OciImage::new().layer(
        TarLayer::with([
            E::dir("usr/lib/systemd/boot"),
            E::dir("usr/lib/systemd/boot/efi"),
            E::file(
                "usr/lib/systemd/boot/efi/linuxx64.efi.stub",
                std::fs::read(common::STUB).unwrap(),
            ),
            E::file(
                "usr/lib/systemd/boot/efi/systemd-bootx64.efi",
                std::fs::read(common::SYSTEMD_BOOT).unwrap(),
            ),
            E::dir("opt"),
        ]),
        Compression::Gzip,
    );
    for i in 0..EXTRA_LAYERS {
        let mut data = vec![0u8; 600_000];
        for (j, b) in data.iter_mut().enumerate() {
            *b = ((j * 31 + i * 7) % 251) as u8;
        }
        extra = extra.layer(
            TarLayer::with([
                E::dir(&format!("opt/app{i}")),
                E::file(&format!("opt/app{i}/data"), data),
            ]),
            if i % 2 == 0 {
                Compression::Gzip
            } else {
                Compression::Zstd
            },
        );
    }
    let written = extra.write(&dir, "extra");
    layers.extend(written.layers);
    let image = OciImage::new().write_metadata(&dir, "bench", layers);
    std::fs::write(dir.join("complete"), b"").unwrap();
    image
}

/// The new layer's compression choices on a UKI-sized file of incompressible bytes (a UKI is a
/// compressed kernel and initramfs): time of the one compression pass and blob size.
fn layer_compression_figures() {
    use bootseal::compression::Compression as LayerCompression;
    use bootseal::layer_writer::{LayerContents, LayerEntry};
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let data: Vec<u8> = (0..44 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect();
    let layer = LayerContents {
        mtime: 1_700_000_000,
        entries: vec![LayerEntry::File {
            path: "boot/EFI/Linux/uki.efi".into(),
            mode: 0o644,
            uid: 0,
            gid: 0,
            content: std::sync::Arc::from(data),
        }],
    };
    println!("new layer compression, 44 MiB of incompressible data, median of 3:");
    for (name, c) in [
        ("gzip", LayerCompression::Gzip),
        ("zstd", LayerCompression::Zstd),
        ("none", LayerCompression::None),
    ] {
        let mut times = Vec::new();
        let mut size = 0;
        for _ in 0..3 {
            let start = Instant::now();
            let (written, _) = layer.compress(c).unwrap();
            times.push(start.elapsed());
            size = written.size;
        }
        println!(
            "  {name:<5} {:>6.3} s   blob {:.3}% of the tar",
            common::baseline::median(times).as_secs_f64(),
            size as f64 * 100.0 / (44u64 << 20) as f64
        );
    }
}

fn main() {
    layer_compression_figures();
    for tool in ["gzip", "zstd", "sha256sum", "skopeo", "openssl"] {
        common::require_tool(tool);
    }
    let parallelism = std::thread::available_parallelism().map_or(1, |n| n.get());
    let image = bench_image();
    let compressed: u64 = image.layers.iter().map(|l| l.size).sum();
    let tmp = common::scratch();
    let keys = common::keypair(tmp.path(), "db", 2048);
    let reg = Registry::start(Variant::Plain);
    reg.push_layout(&image.oci_ref(), "bench/base:1");

    const REPS: usize = 3;
    let (mut seal_runs, mut tools_runs, mut skopeo_runs, mut peak, mut written) =
        (vec![], vec![], vec![], 0, 0);
    let (mut layout_runs, mut layout_peak, mut layout_layer) = (vec![], 0, 0);
    for rep in 0..REPS {
        tools_runs.push(common::baseline::decompress_and_hash(&image, parallelism));
        let out_dir = tmp.path().join(format!("out{rep}"));
        let (wall, rss, out) = measure::timed(
            Command::new(env!("CARGO_BIN_EXE_bootseal"))
                .env("SOURCE_DATE_EPOCH", "1700000000")
                .args([
                    "seal",
                    "--json",
                    "--quiet",
                    "--allow-section-overlap",
                    "--from",
                ])
                .arg(image.oci_ref())
                .arg("--to")
                .arg(format!("oci:{}:sealed", out_dir.display()))
                .arg("--key")
                .arg(&keys.key)
                .arg("--cert")
                .arg(&keys.cert),
        );
        let report: serde_json::Value = serde_json::from_str(&out).unwrap();
        layout_layer = report["platforms"][0]["layer"]["size"].as_u64().unwrap();
        layout_runs.push(wall);
        layout_peak = layout_peak.max(rss);
        let _ = std::fs::remove_dir_all(&out_dir);
        let (wall, rss, out) = measure::timed(
            Command::new(env!("CARGO_BIN_EXE_bootseal"))
                .env("SOURCE_DATE_EPOCH", "1700000000")
                .args([
                    "seal",
                    "--json",
                    "--quiet",
                    "--tls-verify=false",
                    "--allow-section-overlap",
                    "--from",
                ])
                .arg(reg.image("bench/base:1"))
                .arg("--to")
                .arg(reg.image(&format!("bench/sealed{rep}:1")))
                .arg("--key")
                .arg(&keys.key)
                .arg("--cert")
                .arg(&keys.cert),
        );
        let report: serde_json::Value = serde_json::from_str(&out).unwrap();
        written = report["bytes_written"].as_u64().unwrap();
        seal_runs.push(wall);
        peak = peak.max(rss);
        let (wall, _, _) = measure::timed(
            Command::new("skopeo")
                .args([
                    "copy",
                    "-q",
                    "--src-tls-verify=false",
                    "--dest-tls-verify=false",
                ])
                .arg(reg.image("bench/base:1"))
                .arg(reg.image(&format!("bench/copy{rep}:1"))),
        );
        skopeo_runs.push(wall);
    }
    // Bytes skopeo moved: blob GETs it made (the access log's response sizes).
    let log = std::fs::read_to_string(reg.dir.path().join("registry.out")).unwrap();
    let skopeo_get: u64 = log
        .lines()
        .filter(|l| l.contains("\"GET /v2/bench/base/blobs/") && l.ends_with("\"skopeo/1.9.3\""))
        .filter_map(|l| {
            l.split("\" ")
                .nth(1)?
                .split_whitespace()
                .nth(1)?
                .parse::<u64>()
                .ok()
        })
        .sum::<u64>()
        / REPS as u64;

    let digest_json = Command::new(env!("CARGO_BIN_EXE_bootseal"))
        .args(["digest", "--json"])
        .arg(image.oci_ref())
        .output()
        .unwrap();
    let digest_report: serde_json::Value = serde_json::from_slice(&digest_json.stdout).unwrap();
    let uncompressed = digest_report["uncompressed_bytes"].as_u64().unwrap();
    let median = common::baseline::median;
    let (seal, tools, skopeo) = (median(seal_runs), median(tools_runs), median(skopeo_runs));
    let layout = median(layout_runs);
    println!(
        "bootseal seal benchmark ({} layers, {:.1} MB compressed, {:.1} MB uncompressed, {} CPUs, loopback docker-registry, median of {REPS})",
        image.layers.len(),
        compressed as f64 / 1e6,
        uncompressed as f64 / 1e6,
        parallelism
    );
    println!(
        "  bootseal seal oci->oci              {:>7.2} s   ratio {:.2}x to (a) (target <= 1.3x)   peak RSS {:.1} MB; new layer {:.2} MB",
        layout.as_secs_f64(),
        layout.as_secs_f64() / tools.as_secs_f64(),
        layout_peak as f64 / 1024.0,
        layout_layer as f64 / 1e6
    );
    println!(
        "  bootseal seal registry->registry    {:>7.2} s   peak RSS {:.1} MB",
        seal.as_secs_f64(),
        peak as f64 / 1024.0
    );
    println!(
        "      read {:.1} MB (every layer, for the digest), uploaded {:.2} MB (new layer + config + manifest)",
        compressed as f64 / 1e6,
        written as f64 / 1e6
    );
    println!(
        "  (a) gzip/zstd -dc | sha256sum       {:>7.2} s   registry->registry ratio {:.2}x",
        tools.as_secs_f64(),
        seal.as_secs_f64() / tools.as_secs_f64()
    );
    println!(
        "  (b) skopeo copy to another repo      {:>7.2} s   ratio {:.2}x; skopeo read {:.2} MB of blobs (mounts, no digest)",
        skopeo.as_secs_f64(),
        seal.as_secs_f64() / skopeo.as_secs_f64(),
        skopeo_get as f64 / 1e6
    );
}
