//! `seal --addon-cmdline/--addon/--addon-scope`: UKI add-ons built from the image's own add-on
//! stub (trixie's systemd-boot-efi 257) or supplied, signed like the UKI (sbverify), placed
//! where composefs-boot 0.9.0's `get_boot_resources` (what bootc's install runs) finds them as
//! add-ons of the sealed UKI, covered by `verify`; add-ons that would touch the composefs
//! argument, and stubs that cannot load add-ons, are refused by name.

use crate::common;

use common::image_builder::{BuiltImage, E, layer_tar};
use common::{bootc_image, bootseal, keypair, run_ok, scratch, seal_cmd, ukify};
use composefs_boot::bootloader::{BootEntry, PEType, get_boot_resources};
use std::io::Read;
use std::path::Path;
use std::process::Command;

/// A bootc test image whose stubs are trixie's systemd 257 (UKI stub and add-on stub).
fn image_with_257_stubs(dir: &Path) -> (BuiltImage, String) {
    let u = ukify();
    let stub = std::fs::read(&u.stub).unwrap();
    let addon = std::fs::read(u.stub.with_file_name("addonx64.efi.stub")).unwrap();
    let (img, kver, _, _) = bootc_image::layers(
        dir,
        vec![
            E::file("usr/lib/systemd/boot/efi/linuxx64.efi.stub", stub),
            E::file("usr/lib/systemd/boot/efi/addonx64.efi.stub", addon),
        ],
    );
    (img.write(&dir.join("layout"), "base"), kver)
}

/// composefs-boot's view of an image: (path under /boot/EFI/Linux or loader/addons, type) of
/// every Type 2 entry `get_boot_resources` returns, from composefs-oci's tree of the image.
fn boot_resources(image: &BuiltImage) -> Vec<(String, String)> {
    let common::reference::Pulled {
        dir: _dir,
        repo,
        fs,
        ..
    } = common::reference::pull(image).unwrap();
    let mut out: Vec<(String, String)> = get_boot_resources(&fs, &repo)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e {
            BootEntry::Type2(t) => Some((
                t.file_path.display().to_string(),
                match t.pe_type {
                    PEType::Uki => "Uki",
                    PEType::UkiAddon => "UkiAddon",
                    PEType::GlobalUkiAddon => "GlobalUkiAddon",
                }
                .to_owned(),
            )),
            _ => None,
        })
        .collect();
    out.sort();
    out
}

/// The files of the top layer, extracted into `dir`; returns their paths.
fn extract_top(image: &BuiltImage, dir: &Path) -> Vec<String> {
    let (tar, _) = layer_tar(image.layers.last().unwrap());
    let mut archive = tar::Archive::new(&tar[..]);
    let mut names = Vec::new();
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        if e.header().entry_type().is_file() {
            let mut bytes = Vec::new();
            e.read_to_end(&mut bytes).unwrap();
            let to = dir.join(&name);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::write(to, bytes).unwrap();
        }
        names.push(name);
    }
    names
}

fn sbverify(cert: &Path, file: &Path) {
    common::require_tool("sbverify");
    run_ok(Command::new("sbverify").arg("--cert").arg(cert).arg(file));
}

#[test]
fn addons_are_signed_placed_found_by_composefs_boot_and_verified() {
    let tmp = scratch();
    let (base, kver) = image_with_257_stubs(tmp.path());
    let keys = keypair(tmp.path(), "db", 2048);
    let u = ukify();
    // An add-on built elsewhere (unsigned): the seal signs it.
    let given = tmp.path().join("iommu.addon.efi");
    run_ok(
        bootseal()
            .arg("build-addon")
            .arg("--stub")
            .arg(u.stub.with_file_name("addonx64.efi.stub"))
            .args(["--cmdline", "iommu=pt"])
            .arg("-o")
            .arg(&given),
    );
    let out = tmp.path().join("out");
    let sealed_ref = format!("oci:{}:sealed", out.display());
    run_ok(
        seal_cmd(&base.oci_ref(), &sealed_ref, &keys)
            .args(["--addon-cmdline", "systemd.log_level=debug  loglevel=7"])
            .arg("--addon")
            .arg(&given),
    );
    let sealed = BuiltImage::load(&out, "sealed");
    let x = tmp.path().join("x");
    let names = extract_top(&sealed, &x);
    let dir = format!("boot/EFI/Linux/{kver}.efi.extra.d");
    let built = format!("{dir}/bootseal-01.addon.efi");
    let supplied = format!("{dir}/iommu.addon.efi");
    for n in [&format!("{dir}/"), &built, &supplied] {
        assert!(names.contains(n), "{n} not in the sealed layer: {names:?}");
    }
    for f in [&built, &supplied] {
        sbverify(&keys.cert, &x.join(f));
    }
    assert_eq!(
        common::objcopy_section(&x.join(&built), ".cmdline", tmp.path()),
        b"systemd.log_level=debug loglevel=7"
    );

    // composefs-boot sees the UKI and its two add-ons.
    assert_eq!(
        boot_resources(&sealed),
        [
            (format!("{kver}.efi"), "Uki".to_owned()),
            (
                format!("{kver}.efi.extra.d/bootseal-01.addon.efi"),
                "UkiAddon".to_owned()
            ),
            (
                format!("{kver}.efi.extra.d/iommu.addon.efi"),
                "UkiAddon".to_owned()
            ),
        ]
    );

    // verify covers them: signatures, command lines, and the whole command line.
    let v = Command::new(env!("CARGO_BIN_EXE_bootseal"))
        .args(["verify", "--json", &sealed_ref])
        .arg("--cert")
        .arg(&keys.cert)
        .output()
        .unwrap();
    let j: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
    assert_eq!(j["ok"], true, "{j:#}");
    let checks: Vec<(String, String)> = j["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["detail"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        checks
            .iter()
            .filter(|(n, _)| n == "add-on signature")
            .count(),
        2,
        "{checks:?}"
    );
    let whole = checks
        .iter()
        .find(|(n, _)| n == "command line with add-ons")
        .unwrap();
    assert!(
        whole
            .1
            .ends_with("systemd.log_level=debug loglevel=7 iommu=pt"),
        "{whole:?}"
    );
    // Another certificate: the add-ons' signatures fail too.
    let other = keypair(tmp.path(), "other", 2048);
    let v = Command::new(env!("CARGO_BIN_EXE_bootseal"))
        .args(["verify", "--json", &sealed_ref])
        .arg("--cert")
        .arg(&other.cert)
        .output()
        .unwrap();
    assert!(!v.status.success());
    let j: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
    let failed: Vec<&str> = j["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        failed.iter().filter(|n| **n == "add-on signature").count(),
        2,
        "{failed:?}"
    );

    // Global scope: /boot/loader/addons, a global add-on to composefs-boot.
    let global_ref = format!("oci:{}:global", out.display());
    run_ok(seal_cmd(&base.oci_ref(), &global_ref, &keys).args([
        "--addon-cmdline",
        "quiet",
        "--addon-scope",
        "global",
    ]));
    let global = BuiltImage::load(&out, "global");
    let g = tmp.path().join("g");
    let names = extract_top(&global, &g);
    assert!(
        names.contains(&"boot/loader/addons/bootseal-01.addon.efi".to_owned()),
        "{names:?}"
    );
    sbverify(
        &keys.cert,
        &g.join("boot/loader/addons/bootseal-01.addon.efi"),
    );
    assert_eq!(
        boot_resources(&global),
        [
            (format!("{kver}.efi"), "Uki".to_owned()),
            (
                "bootseal-01.addon.efi".to_owned(),
                "GlobalUkiAddon".to_owned()
            ),
        ]
    );
}

#[test]
fn addons_touching_composefs_or_on_old_stubs_are_refused() {
    let tmp = scratch();
    let (base, _) = image_with_257_stubs(tmp.path());
    let keys = keypair(tmp.path(), "db", 2048);
    let out = tmp.path().join("out");
    let to = format!("oci:{}:sealed", out.display());
    let fails = |cmd: &mut Command, expect: &[&str]| {
        let o = cmd.arg("--quiet").output().unwrap();
        assert!(!o.status.success(), "sealed although it should not");
        let err = String::from_utf8_lossy(&o.stderr);
        for e in expect {
            assert!(err.contains(e), "{e:?} not in: {err}");
        }
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            !out.join("index.json").exists()
                || !std::fs::read_to_string(out.join("index.json"))
                    .unwrap()
                    .contains("\"sealed\""),
            "a refused seal tagged the image"
        );
    };

    // Built here from a composefs argument.
    fails(
        seal_cmd(&base.oci_ref(), &to, &keys).args(["--addon-cmdline", "quiet composefs=00ff"]),
        &["bootseal-01.addon.efi", "composefs=00ff"],
    );

    // Supplied, built by ukify (which does not check) with a composefs.digest= argument.
    let u = ukify();
    let evil = tmp.path().join("evil.addon.efi");
    run_ok(
        u.build()
            .arg("--stub")
            .arg(u.stub.with_file_name("addonx64.efi.stub"))
            .arg("--cmdline=composefs.digest=v1-sha512-12:00ff")
            .arg("--output")
            .arg(&evil),
    );
    fails(
        seal_cmd(&base.oci_ref(), &to, &keys)
            .arg("--addon")
            .arg(&evil),
        &["evil.addon.efi", "composefs.digest"],
    );

    // A UKI stub that cannot load add-ons (Debian 12's systemd 252).
    let old_stub = common::require_file(common::STUB, "systemd-boot-efi");
    let old = bootseal::uki::stub::version(&std::fs::read(&old_stub).unwrap());
    if old.is_some_and(|v| v < 254) {
        fails(
            seal_cmd(&base.oci_ref(), &to, &keys)
                .arg("--stub")
                .arg(&old_stub)
                .args(["--addon-cmdline", "quiet"]),
            &["cannot load", "add-ons"],
        );
    }
}

/// `image`'s layers plus one more holding `extra`.
fn with_layer(image: &BuiltImage, extra: Vec<E>, dir: &Path, tag: &str) -> BuiltImage {
    use common::image_builder::{Compression, OciImage, TarLayer};
    let mut out = OciImage::new();
    for l in &image.layers {
        let (tar, c) = layer_tar(l);
        out = out.layer(tar, c);
    }
    out.layer(TarLayer::with(extra), Compression::Gzip)
        .write(dir, tag)
}

#[test]
fn addons_already_in_an_image_are_held_to_the_same_policy() {
    let tmp = scratch();
    let (base, kver) = image_with_257_stubs(tmp.path());
    let keys = keypair(tmp.path(), "db", 2048);
    let u = ukify();
    // An add-on with a composefs argument, signed by the sealing key (ukify does not check).
    let evil = tmp.path().join("evil.addon.efi");
    run_ok(
        u.build()
            .arg("--stub")
            .arg(u.stub.with_file_name("addonx64.efi.stub"))
            .arg("--cmdline=composefs=00ff")
            .arg("--output")
            .arg(&evil),
    );
    let evil_signed = tmp.path().join("evil-signed.addon.efi");
    run_ok(&mut common::sign_cmd(
        &keys.key,
        &keys.cert,
        &evil,
        &evil_signed,
    ));
    let evil_bytes = std::fs::read(&evil_signed).unwrap();

    // In the base image as a global add-on: the seal refuses, naming it.
    let tainted = with_layer(
        &base,
        vec![
            E::dir("boot/loader"),
            E::dir("boot/loader/addons"),
            E::file("boot/loader/addons/evil.addon.efi", evil_bytes.clone()),
        ],
        &tmp.path().join("tainted"),
        "tainted",
    );
    let o = common::seal_cmd(
        &tainted.oci_ref(),
        &format!("oci:{}:x", tmp.path().join("out").display()),
        &keys,
    )
    .arg("--quiet")
    .output()
    .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("/boot/loader/addons/evil.addon.efi") && err.contains("composefs=00ff"),
        "{err}"
    );

    // Added to a sealed image afterwards, beside the UKI and in a directory named for no UKI:
    // verify fails both, naming them.
    let out = tmp.path().join("sealed");
    run_ok(
        common::seal_cmd(&base.oci_ref(), &format!("oci:{}:s", out.display()), &keys)
            .arg("--quiet"),
    );
    let sealed = BuiltImage::load(&out, "s");
    let dir = format!("boot/EFI/Linux/{kver}.efi.extra.d");
    let later = with_layer(
        &sealed,
        vec![
            E::dir(&dir),
            E::file(&format!("{dir}/evil.addon.efi"), evil_bytes.clone()),
            E::dir("boot/EFI/Linux/other.efi.extra.d"),
            E::file(
                "boot/EFI/Linux/other.efi.extra.d/stray.addon.efi",
                evil_bytes,
            ),
        ],
        &tmp.path().join("later"),
        "later",
    );
    let v = Command::new(env!("CARGO_BIN_EXE_bootseal"))
        .args(["verify", "--json", &later.oci_ref()])
        .arg("--cert")
        .arg(&keys.cert)
        .output()
        .unwrap();
    assert!(!v.status.success());
    let j: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
    let failed: Vec<String> = j["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| {
            format!(
                "{}: {}",
                c["name"].as_str().unwrap(),
                c["detail"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        failed.iter().any(|f| f.starts_with("add-on command line: ")
            && f.contains(&format!("/{dir}/evil.addon.efi"))
            && f.contains("composefs=00ff")),
        "{failed:?}"
    );
    assert!(
        failed
            .iter()
            .any(|f| f.starts_with("add-on placement: ") && f.contains("stray.addon.efi")),
        "{failed:?}"
    );
}

/// `sbsign --key K --cert C --output OUT IN`: signing "elsewhere".
fn sbsign(keys: &common::KeyPair, input: &Path, output: &Path) {
    common::require_tool("sbsign");
    run_ok(
        Command::new("sbsign")
            .arg("--key")
            .arg(&keys.key)
            .arg("--cert")
            .arg(&keys.cert)
            .arg("--output")
            .arg(output)
            .arg(input),
    );
}

#[test]
fn addons_in_the_external_signing_workflow() {
    let tmp = scratch();
    let t = tmp.path();
    let (base, kver) = image_with_257_stubs(t);
    let keys = keypair(t, "db", 2048);
    let from = base.oci_ref();
    // 1. The unsigned UKI and its add-on, checked together, written for signing.
    let unsigned = t.join("unsigned");
    run_ok(
        bootseal()
            .args(["build-uki", "--from", &from, "--no-sign-bootloader"])
            .args(["--addon-cmdline", "systemd.log_level=debug"])
            .arg("--addon-out")
            .arg(&unsigned)
            .arg("-o")
            .arg(t.join("uki.efi")),
    );
    let addon = unsigned.join("bootseal-01.addon.efi");
    assert_eq!(
        common::objcopy_section(&addon, ".cmdline", t),
        b"systemd.log_level=debug"
    );
    // 2. Signed elsewhere, the add-on keeping its name.
    let signed = t.join("signed");
    std::fs::create_dir_all(&signed).unwrap();
    sbsign(&keys, &t.join("uki.efi"), &t.join("uki.signed"));
    sbsign(&keys, &addon, &signed.join("bootseal-01.addon.efi"));
    // 3. The seal takes both; without a key, an add-on the certificate does not verify is refused.
    let out = t.join("out");
    let seal = |addon: &Path| {
        bootseal()
            .args([
                "seal",
                "--quiet",
                "--no-sign-bootloader",
                "--from",
                &from,
                "--to",
            ])
            .arg(format!("oci:{}:ext", out.display()))
            .arg("--uki")
            .arg(t.join("uki.signed"))
            .arg("--cert")
            .arg(&keys.cert)
            .arg("--addon")
            .arg(addon)
            .output()
            .unwrap()
    };
    let refused = seal(&addon);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("bootseal-01.addon.efi is not signed by the --cert certificate"),
        "{err}"
    );
    let ok = seal(&signed.join("bootseal-01.addon.efi"));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let sealed = BuiltImage::load(&out, "ext");
    let x = t.join("x");
    extract_top(&sealed, &x);
    assert_eq!(
        std::fs::read(x.join(format!(
            "boot/EFI/Linux/{kver}.efi.extra.d/bootseal-01.addon.efi"
        )))
        .unwrap(),
        std::fs::read(signed.join("bootseal-01.addon.efi")).unwrap(),
        "the add-on signed elsewhere is sealed as it is"
    );
    let v = Command::new(env!("CARGO_BIN_EXE_bootseal"))
        .args(["verify", "--json"])
        .arg(format!("oci:{}:ext", out.display()))
        .arg("--cert")
        .arg(&keys.cert)
        .output()
        .unwrap();
    let j: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
    assert_eq!(j["ok"], true, "{j:#}");
}
