//! The registry test harness itself, checked with skopeo in every variant (plain, htpasswd,
//! TLS with a test CA, bearer tokens): an image pushed from an OCI layout comes back with the
//! same manifest bytes, and the variant's protection is real (no creds / no CA is refused).
//! Plus the sinks used directly: an OCI layout written by `OciLayoutSink` is accepted by
//! skopeo and umoci (which applies our whiteout), and an upload whose source fails mid-blob
//! leaves no tag in the registry.

use crate::common;

use bootseal::compression::Compression as LayerCompression;
use bootseal::layer_writer::{LayerContents, LayerEntry};
use bootseal::manifest::{Descriptor, Document, OCI_CONFIG, OCI_MANIFEST, sha256_digest};
use bootseal::mutate;
use bootseal::registry::RegistryOptions;
use bootseal::sink::{OciLayoutSink, RegistrySink, Sink};
use common::image_builder::{BuiltImage, Compression, E, OciImage, TarLayer};
use common::registry::{PASS, Registry, USER, Variant};
use common::{require_tool, run_ok, scratch};
use std::io::Read;
use std::process::Command;

/// A two-layer base; `second` compresses the second layer (umoci 0.4.7 reads no zstd).
fn base(dir: &std::path::Path, second: Compression) -> BuiltImage {
    OciImage::new()
        .layer(
            TarLayer::with([
                E::dir("usr"),
                E::dir("usr/lib"),
                E::dir("boot"),
                E::file("usr/lib/os-release", "ID=test\n"),
                E::dir("usr/lib/modules"),
                E::dir("usr/lib/modules/6.1.0-test"),
                E::file("usr/lib/modules/6.1.0-test/vmlinuz", vec![b'k'; 5000]),
            ]),
            Compression::Gzip,
        )
        .layer(
            TarLayer::with([E::file("usr/lib/extra", vec![b'x'; 3000])]),
            second,
        )
        .write(dir, "base")
}

fn check_variant(variant: Variant) {
    let tmp = scratch();
    let image = base(&tmp.path().join("layout"), Compression::Zstd);
    let reg = Registry::start(variant);
    reg.push_layout(&image.oci_ref(), "test/harness:v1");

    let raw = reg
        .raw_manifest("test/harness:v1")
        .expect("manifest pushed");
    assert_eq!(sha256_digest(&raw), image.manifest_digest, "{variant:?}");

    let back = tmp.path().join("back");
    reg.pull_layout("test/harness:v1", &back, "v1");
    let pulled = BuiltImage::load(&back, "v1");
    assert_eq!(pulled.manifest_digest, image.manifest_digest);
    assert_eq!(pulled.layers.len(), 2);

    // The protection each variant claims is enforced.
    let unprotected = |extra: &[&str]| {
        Command::new("skopeo")
            .args(["inspect", "--raw"])
            .args(extra)
            .arg(reg.image("test/harness:v1"))
            .output()
            .unwrap()
    };
    match variant {
        Variant::Plain => assert!(unprotected(&["--tls-verify=false"]).status.success()),
        Variant::Htpasswd | Variant::Token => {
            // The token server grants anonymous pulls (like public repositories); htpasswd none.
            let out = unprotected(&["--tls-verify=false"]);
            assert_eq!(
                out.status.success(),
                variant == Variant::Token,
                "{variant:?}"
            );
            let wrong = unprotected(&["--tls-verify=false", &format!("--creds={USER}:wrong")]);
            assert!(
                !wrong.status.success(),
                "{variant:?} accepted a wrong password"
            );
            let anonymous_push = Command::new("skopeo")
                .args(["copy", "-q", "--dest-tls-verify=false"])
                .arg(image.oci_ref())
                .arg(reg.image("test/anonymous:v1"))
                .output()
                .unwrap();
            assert!(
                !anonymous_push.status.success(),
                "{variant:?} took an anonymous push"
            );
        }
        Variant::Tls => {
            let out = unprotected(&[]);
            assert!(!out.status.success(), "TLS without the CA was accepted");
            let text = String::from_utf8_lossy(&out.stderr);
            assert!(text.contains("certificate"), "{text}");
        }
    }
    if variant == Variant::Token {
        let log = std::fs::read_to_string(reg.token_log.as_ref().unwrap()).unwrap();
        assert!(
            log.contains("test/harness"),
            "token server saw no scope: {log}"
        );
    }
}

#[test]
fn plain() {
    check_variant(Variant::Plain);
}

#[test]
fn htpasswd() {
    check_variant(Variant::Htpasswd);
}

#[test]
fn tls() {
    check_variant(Variant::Tls);
}

#[test]
fn token() {
    check_variant(Variant::Token);
}

/// The sealed-style new layer used below: /boot/EFI/Linux/<kver>.efi plus a whiteout.
fn new_layer() -> LayerContents {
    let dir = |path: &str| LayerEntry::Directory {
        path: path.into(),
        mode: 0o755,
        uid: 0,
        gid: 0,
        mtime_nsec: 0,
    };
    LayerContents {
        entries: vec![
            dir("boot"),
            dir("boot/EFI"),
            dir("boot/EFI/Linux"),
            LayerEntry::File {
                path: "boot/EFI/Linux/6.1.0-test.efi".into(),
                mode: 0o644,
                uid: 0,
                gid: 0,
                content: vec![b'U'; 70_000].into(),
            },
            LayerEntry::Whiteout {
                dir: "usr/lib/modules/6.1.0-test".into(),
                name: "vmlinuz".into(),
            },
        ],
        mtime: 1_700_000_000,
    }
}

/// Config and manifest of `image` plus the new layer, as the seal pipeline builds them.
fn mutated(image: &BuiltImage, layer: &Descriptor, diff_id: &str) -> (Vec<u8>, Document) {
    let blob = |d: &str| std::fs::read(image.dir.join("blobs/sha256").join(&d[7..])).unwrap();
    let config: serde_json::Value = serde_json::from_slice(&blob(&image.config_digest)).unwrap();
    let history = mutate::HistoryEntry {
        created: mutate::rfc3339(1_700_000_000),
        created_by: "bootseal test".into(),
        comment: "new layer".into(),
    };
    let labels = [("containers.bootc".to_string(), "sealed".to_string())];
    let config = mutate::config_with_layer(&config, diff_id, &history, &labels).unwrap();
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let config_desc = Descriptor {
        media_type: OCI_CONFIG.into(),
        digest: sha256_digest(&config_bytes),
        size: config_bytes.len() as u64,
        platform: None,
        annotations: None,
    };
    let manifest: serde_json::Value =
        serde_json::from_slice(&blob(&image.manifest_digest)).unwrap();
    let manifest = mutate::manifest_with_layer(&manifest, &config_desc, layer, &[]).unwrap();
    let doc = Document::parse(serde_json::to_vec(&manifest).unwrap(), Some(OCI_MANIFEST)).unwrap();
    (config_bytes, doc)
}

fn layer_desc(written: &bootseal::layer_writer::WrittenLayer) -> Descriptor {
    Descriptor {
        media_type: LayerCompression::Gzip
            .layer_media_type(OCI_MANIFEST)
            .unwrap()
            .into(),
        digest: written.digest.clone(),
        size: written.size,
        platform: None,
        annotations: None,
    }
}

/// OciLayoutSink writes a layout that skopeo and umoci read, and umoci's independent unpack
/// shows our file added and our whiteout applied.
#[test]
fn layout_sink_output_is_read_by_skopeo_and_umoci() {
    require_tool("umoci");
    let tmp = scratch();
    let image = base(&tmp.path().join("in"), Compression::Gzip);
    let out = tmp.path().join("out");
    let sink = OciLayoutSink::create(&out, None).unwrap();
    for l in &image.layers {
        let desc = Descriptor {
            media_type: l.media_type.clone(),
            digest: l.digest.clone(),
            size: l.size,
            platform: None,
            annotations: None,
        };
        sink.put_blob_stream(&desc, Box::new(std::fs::File::open(&l.path).unwrap()))
            .unwrap();
    }
    let contents = new_layer();
    let mut blob = Vec::new();
    let written = contents
        .write_blob(LayerCompression::Gzip, &mut blob)
        .unwrap();
    let layer = layer_desc(&written);
    sink.put_blob(&layer, &blob).unwrap();
    let (config, doc) = mutated(&image, &layer, &written.diff_id);
    let config_desc = doc.config().unwrap();
    sink.put_blob(&config_desc, &config).unwrap();
    sink.put_manifest(&doc, Some("sealed")).unwrap();
    sink.commit().unwrap();

    let raw = run_ok(Command::new("skopeo").args([
        "inspect",
        "--raw",
        &format!("oci:{}:sealed", out.display()),
    ]))
    .stdout;
    assert_eq!(raw, doc.bytes);
    let inspect =
        run_ok(Command::new("skopeo").args(["inspect", &format!("oci:{}:sealed", out.display())]))
            .stdout;
    let inspect: serde_json::Value = serde_json::from_slice(&inspect).unwrap();
    assert_eq!(inspect["Labels"]["containers.bootc"], "sealed");
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 3);

    let bundle = tmp.path().join("bundle");
    run_ok(Command::new("umoci").args([
        "unpack",
        "--rootless",
        "--image",
        &format!("{}:sealed", out.display()),
        bundle.to_str().unwrap(),
    ]));
    let root = bundle.join("rootfs");
    let uki = std::fs::read(root.join("boot/EFI/Linux/6.1.0-test.efi")).unwrap();
    assert_eq!(uki.len(), 70_000);
    assert!(root.join("usr/lib/modules/6.1.0-test").is_dir());
    assert!(!root.join("usr/lib/modules/6.1.0-test/vmlinuz").exists());
    assert!(root.join("usr/lib/extra").is_file());
}

/// A reader that fails after `left` bytes, like a source connection dropping mid-blob.
struct FailingReader {
    left: usize,
}

impl Read for FailingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Err(std::io::Error::other("source connection reset"));
        }
        let n = buf.len().min(self.left);
        buf[..n].fill(b'z');
        self.left -= n;
        Ok(n)
    }
}

/// An upload whose source errors mid-blob fails with an error naming the blob; the blob is not
/// present, the manifest naming it is refused, and the tag does not exist.
#[test]
fn interrupted_upload_leaves_no_tag() {
    let reg = Registry::start(Variant::Htpasswd);
    let opts = RegistryOptions {
        tls_verify: false,
        cert_dir: None,
        auth: bootseal::registry::AuthOptions {
            creds: Some(format!("{USER}:{PASS}")),
            authfile: None,
        },
        ..RegistryOptions::default()
    };
    let reference: oci_client::Reference = format!("{}/test/broken:v1", reg.host).parse().unwrap();
    let sink = RegistrySink::new(reference, &opts).unwrap();
    let desc = Descriptor {
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
        digest: format!("sha256:{}", "ab".repeat(32)),
        size: 10 << 20,
        platform: None,
        annotations: None,
    };
    let err = sink
        .put_blob_stream(&desc, Box::new(FailingReader { left: 6 << 20 }))
        .unwrap_err()
        .to_string();
    assert!(err.contains(&desc.digest), "{err}");
    assert!(!sink.has_blob(&desc).unwrap());

    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_desc = Descriptor {
        media_type: OCI_CONFIG.into(),
        digest: sha256_digest(config),
        size: config.len() as u64,
        platform: None,
        annotations: None,
    };
    sink.put_blob(&config_desc, config).unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_desc.digest, "size": config_desc.size},
        "layers": [{"mediaType": desc.media_type, "digest": desc.digest, "size": desc.size}],
    });
    let doc = Document::parse(serde_json::to_vec(&manifest).unwrap(), Some(OCI_MANIFEST)).unwrap();
    let err = sink.put_manifest(&doc, Some("v1")).unwrap_err().to_string();
    assert!(err.contains(&desc.digest), "{err}");
    assert!(reg.raw_manifest("test/broken:v1").is_none());
}

/// The new layer is reproducible and its streamed digests are those of the bytes written.
#[test]
fn new_layer_is_reproducible_across_runs() {
    for compression in [LayerCompression::Gzip, LayerCompression::Zstd] {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let wa = new_layer().write_blob(compression, &mut a).unwrap();
        let wb = new_layer().write_blob(compression, &mut b).unwrap();
        assert_eq!(a, b);
        assert_eq!(wa, wb);
        assert_eq!(wa.digest, sha256_digest(&a));
        assert_eq!(wa.size, a.len() as u64);
        let tar = new_layer().tar_bytes().unwrap();
        assert_eq!(wa.diff_id, sha256_digest(&tar));
    }
}
