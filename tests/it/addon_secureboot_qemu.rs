//! Sealed add-ons at boot: OVMF with Secure Boot on (db = the snakeoil certificate), the signed
//! systemd-boot 257 and the sealed UKI (systemd-stub 257) from an image sealed with
//! `--addon-cmdline`, its add-on on the ESP in the `.extra.d` directory named after the UKI file
//! (where systemd-stub looks), a global add-on in `loader/addons`, and one add-on signed by
//! another key. The kernel's command line carries the sealed `composefs=`, then the global
//! add-on's arguments, then the UKI's own add-on's (systemd-stub's order); the add-on signed by
//! another key is not applied.

use crate::common;

use common::image_builder::{BuiltImage, E, layer_tar};
use common::secureboot::{DB_CERT, DB_KEY, Verdict, boot_esp, make_esp_tree, sign_snakeoil};
use common::{bootc_image, bootseal, keypair, run_ok, scratch, sign_cmd, ukify};
use std::io::Read;
use std::path::{Path, PathBuf};

const SNAKEOIL_PASS_ENV: &str = "BOOTSEAL_SNAKEOIL_PASS";
const OVMF_VARS_SNAKEOIL: &str = common::secureboot::OVMF_VARS_SNAKEOIL;

/// Writes the top layer's regular files under `dir`.
fn extract_top(image: &BuiltImage, dir: &Path) {
    let (tar, _) = layer_tar(image.layers.last().unwrap());
    let mut archive = tar::Archive::new(&tar[..]);
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        if !e.header().entry_type().is_file() {
            continue;
        }
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        e.read_to_end(&mut bytes).unwrap();
        let to = dir.join(name);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(to, bytes).unwrap();
    }
}

fn build_addon(stub: &Path, cmdline: &str, out: &Path) {
    run_ok(
        bootseal()
            .arg("build-addon")
            .arg("--stub")
            .arg(stub)
            .args(["--cmdline", cmdline])
            .arg("-o")
            .arg(out),
    );
}

#[test]
fn sealed_addon_arguments_reach_the_kernel_and_a_foreign_addon_does_not() {
    common::secureboot::require_qemu_parts();
    let u = ukify();
    let addon_stub = u.stub.with_file_name("addonx64.efi.stub");
    let tmp = scratch();
    // The image carries systemd 257's stub, add-on stub and systemd-boot (Debian trixie).
    let (img, kver, _, _) = bootc_image::layers(
        tmp.path(),
        vec![
            E::file(
                "usr/lib/systemd/boot/efi/linuxx64.efi.stub",
                std::fs::read(&u.stub).unwrap(),
            ),
            E::file(
                "usr/lib/systemd/boot/efi/addonx64.efi.stub",
                std::fs::read(&addon_stub).unwrap(),
            ),
            E::file(
                "usr/lib/systemd/boot/efi/systemd-bootx64.efi",
                std::fs::read(u.stub.with_file_name("systemd-bootx64.efi")).unwrap(),
            ),
        ],
    );
    let base = img.write(&tmp.path().join("layout"), "base");
    let out = tmp.path().join("out");
    run_ok(
        bootseal()
            .env(SNAKEOIL_PASS_ENV, "snakeoil")
            .args(["seal", "--quiet", "--from"])
            .arg(base.oci_ref())
            .arg("--to")
            .arg(format!("oci:{}:sealed", out.display()))
            .args(["--key", DB_KEY, "--cert", DB_CERT])
            .args(["--key-pass-env", SNAKEOIL_PASS_ENV])
            .args(["--addon-cmdline", "bootseal.addon=uki"]),
    );
    let sealed = BuiltImage::load(&out, "sealed");
    let x = tmp.path().join("x");
    extract_top(&sealed, &x);
    let digest = common::reference::reference_digest(&sealed, 1);

    // A global add-on signed with the db key, and one signed with a key the firmware lacks.
    let global = tmp.path().join("global.addon.efi");
    build_addon(&addon_stub, "bootseal.addon=global", &global);
    let global_signed = tmp.path().join("global-signed.addon.efi");
    sign_snakeoil(&global, &global_signed);
    let rogue = tmp.path().join("rogue.addon.efi");
    build_addon(&addon_stub, "bootseal.addon=rogue", &rogue);
    let other = keypair(tmp.path(), "other", 2048);
    let rogue_signed = tmp.path().join("rogue-signed.addon.efi");
    run_ok(&mut sign_cmd(
        &other.key,
        &other.cert,
        &rogue,
        &rogue_signed,
    ));

    // The ESP as bootc's install lays it out: the UKI under EFI/Linux with its add-ons in
    // <uki file>.extra.d, global add-ons in loader/addons.
    let uki_dir = x.join("boot/EFI/Linux");
    let conf = tmp.path().join("loader.conf");
    std::fs::write(&conf, "timeout 0\n").unwrap();
    let files: Vec<(PathBuf, String)> = vec![
        (
            x.join("usr/lib/systemd/boot/efi/systemd-bootx64.efi.signed"),
            "EFI/BOOT/BOOTX64.EFI".into(),
        ),
        (conf, "loader/loader.conf".into()),
        (
            uki_dir.join(format!("{kver}.efi")),
            format!("EFI/Linux/{kver}.efi"),
        ),
        (
            uki_dir.join(format!("{kver}.efi.extra.d/bootseal-01.addon.efi")),
            format!("EFI/Linux/{kver}.efi.extra.d/bootseal-01.addon.efi"),
        ),
        (
            rogue_signed,
            format!("EFI/Linux/{kver}.efi.extra.d/zz-rogue.addon.efi"),
        ),
        (global_signed, "loader/addons/global.addon.efi".into()),
    ];
    let esp = make_esp_tree(tmp.path(), &files);
    let vars = tmp.path().join("vars.fd");
    std::fs::copy(OVMF_VARS_SNAKEOIL, &vars).unwrap();
    let (verdict, log) = boot_esp(&vars, &esp);
    let line = match verdict {
        Verdict::Booted(line) => line,
        v => panic!("the sealed UKI with add-ons did not boot: {v:?}"),
    };
    assert!(
        log.contains("secureboot: Secure boot enabled"),
        "not a Secure Boot boot"
    );
    assert!(line.contains(&format!("composefs={digest} ")), "{line}");
    assert!(
        line.ends_with("bootseal.addon=global bootseal.addon=uki"),
        "{line}"
    );
    assert!(
        !line.contains("rogue"),
        "a foreign add-on was applied: {line}"
    );
}
