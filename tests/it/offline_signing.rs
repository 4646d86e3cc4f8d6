//! Air-gapped signing: `seal --prepare-signing` writes a signing request, `openssl dgst -sha256
//! -sign` signs each entry's data (the signing room), `seal --signatures` completes. The sealed
//! manifest is the one a direct `--key` seal writes (same SOURCE_DATE_EPOCH), sbverify accepts
//! the UKI and systemd-boot, and a flipped bit, another request's signature and a missing entry
//! are each refused by id with nothing tagged.

use crate::common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use common::image_builder::BuiltImage;
use common::registry::{Registry, Variant};
use common::softhsm::SoftHsm;
use common::{KeyPair, bootc_image, bootseal, keypair, run_ok, scratch, stdout_of};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const EPOCH: &str = "1700000000";

/// `bootseal seal --from --to --cert` (no key) with `extra` flags, fixed date.
fn offline_seal(
    from: &str,
    to: &str,
    cert: &Path,
    extra: &[&dyn AsRef<std::ffi::OsStr>],
) -> Command {
    let mut c = bootseal();
    c.env("SOURCE_DATE_EPOCH", EPOCH)
        .args(["seal", "--quiet", "--from", from, "--to", to, "--cert"])
        .arg(cert);
    for e in extra {
        c.arg(e);
    }
    c
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The signing room: every entry's data signed with `openssl dgst -sha256 -sign KEY`; returns
/// the signatures file.
fn openssl_sign(request: &Path, key: &Path, out: &Path) -> PathBuf {
    let req = read_json(request);
    assert_eq!(req["bootseal-signing-request"], 1);
    let dir = out.with_extension("d");
    std::fs::create_dir_all(&dir).unwrap();
    let mut sigs = Vec::new();
    for (i, entry) in req["requests"].as_array().unwrap().iter().enumerate() {
        assert_eq!(entry["algorithm"], "rsa-pkcs1v15-sha256");
        let data = B64.decode(entry["data"].as_str().unwrap()).unwrap();
        let data_file = dir.join(format!("{i}.bin"));
        let sig_file = dir.join(format!("{i}.sig"));
        std::fs::write(&data_file, &data).unwrap();
        // The digest a KMS would be given is the file's SHA-256.
        let sha = stdout_of(Command::new("sha256sum").arg(&data_file));
        assert_eq!(
            sha.split(' ').next().unwrap(),
            entry["sha256"].as_str().unwrap()
        );
        run_ok(
            Command::new("openssl")
                .args(["dgst", "-sha256", "-sign"])
                .arg(key)
                .arg("-out")
                .arg(&sig_file)
                .arg(&data_file),
        );
        sigs.push(json!({
            "id": entry["id"],
            "signature": B64.encode(std::fs::read(&sig_file).unwrap()),
        }));
    }
    write_signatures(out, sigs)
}

fn write_signatures(out: &Path, sigs: Vec<Value>) -> PathBuf {
    let doc = json!({"bootseal-signatures": 1, "signatures": sigs});
    std::fs::write(out, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    out.to_path_buf()
}

fn ids(request: &Value, key: &str) -> Vec<String> {
    request[key]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["id"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn fails(cmd: &mut Command) -> String {
    let out: Output = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "expected a failure; stderr: {stderr}"
    );
    eprint!("refused as expected: {stderr}");
    stderr
}

/// Both rounds across the air gap: systemd-boot first (the UKI's command line carries the
/// digest over it), then the UKI; returns the two signatures files.
fn two_rounds(
    from: &str,
    to: &str,
    keys: &KeyPair,
    dir: &Path,
    extra: &[&str],
) -> (PathBuf, PathBuf) {
    let extra: Vec<&dyn AsRef<std::ffi::OsStr>> = extra
        .iter()
        .map(|s| s as &dyn AsRef<std::ffi::OsStr>)
        .collect();
    let r1 = dir.join("r1.json");
    let mut flags = extra.clone();
    let prep: [&dyn AsRef<std::ffi::OsStr>; 2] = [&"--prepare-signing", &r1];
    flags.extend(prep);
    let out = run_ok(&mut offline_seal(from, to, &keys.cert, &flags));
    assert!(out.stdout.is_empty(), "a prepare run prints no reference");
    let req1 = read_json(&r1);
    assert_eq!(ids(&req1, "requests"), ["systemd-boot"]);
    assert_eq!(ids(&req1, "pending"), ["uki"]);
    assert_eq!(req1["pending"][0]["after"], json!(["systemd-boot"]));
    assert!(
        req1["certificate"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    let s1 = openssl_sign(&r1, &keys.key, &dir.join("s1.json"));

    let r2 = dir.join("r2.json");
    let mut flags = extra.clone();
    let round2: [&dyn AsRef<std::ffi::OsStr>; 4] =
        [&"--signatures", &s1, &"--prepare-signing", &r2];
    flags.extend(round2);
    run_ok(&mut offline_seal(from, to, &keys.cert, &flags));
    let req2 = read_json(&r2);
    assert_eq!(ids(&req2, "requests"), ["uki"]);
    assert!(ids(&req2, "pending").is_empty());
    let size = std::fs::metadata(&r1).unwrap().len() + std::fs::metadata(&r2).unwrap().len();
    eprintln!("signing requests: {size} bytes in two rounds");
    assert!(size < 16 * 1024, "requests are small: {size} bytes");
    let s2 = openssl_sign(&r2, &keys.key, &dir.join("s2.json"));
    let back = std::fs::metadata(&s1).unwrap().len() + std::fs::metadata(&s2).unwrap().len();
    eprintln!("signatures: {back} bytes in two rounds");
    (s1, s2)
}

#[test]
fn layout_seal_signed_by_openssl_equals_the_direct_seal() {
    common::require_tool("sbverify");
    let tmp = scratch();
    let built = bootc_image::build(tmp.path(), "base");
    let keys = keypair(tmp.path(), "db", 2048);
    let from = built.image.oci_ref();
    let out = tmp.path().join("out");
    let direct = stdout_of(
        common::seal_cmd(&from, &format!("oci:{}:direct", out.display()), &keys)
            .env("SOURCE_DATE_EPOCH", EPOCH)
            .arg("--quiet"),
    );
    let to = format!("oci:{}:offline", out.display());
    let (s1, s2) = two_rounds(&from, &to, &keys, tmp.path(), &[]);
    assert!(
        !layout_has_tag(&out, "offline"),
        "the prepare runs tagged nothing"
    );
    let printed = stdout_of(&mut offline_seal(
        &from,
        &to,
        &keys.cert,
        &[&"--signatures", &s1, &"--signatures", &s2],
    ));
    let digest = |line: &str| line.trim().rsplit('@').next().unwrap().to_owned();
    assert_eq!(
        digest(&printed),
        digest(&direct),
        "same manifest as the direct seal"
    );
    let sealed = BuiltImage::load(&out, "offline");
    assert_eq!(sealed.manifest_digest, digest(&direct));

    // Without a systemd-boot to sign, the UKI is asked for at once: one round.
    let one = tmp.path().join("one.json");
    run_ok(&mut offline_seal(
        &from,
        &to,
        &keys.cert,
        &[&"--no-sign-bootloader", &"--prepare-signing", &one],
    ));
    let one = read_json(&one);
    assert_eq!(ids(&one, "requests"), ["uki"]);
    assert!(ids(&one, "pending").is_empty());

    // sbverify accepts what was signed across the air gap.
    let x = tmp.path().join("x");
    std::fs::create_dir_all(&x).unwrap();
    run_ok(
        Command::new("tar")
            .arg("-xf")
            .arg(&sealed.layers.last().unwrap().path)
            .arg("-C")
            .arg(&x),
    );
    for f in [
        format!("boot/EFI/Linux/{}.efi", built.kver),
        "usr/lib/systemd/boot/efi/systemd-bootx64.efi.signed".into(),
    ] {
        run_ok(
            Command::new("sbverify")
                .arg("--cert")
                .arg(&keys.cert)
                .arg(x.join(f)),
        );
    }
}

/// Whether the layout's index.json names `tag`.
fn layout_has_tag(dir: &Path, tag: &str) -> bool {
    let Ok(bytes) = std::fs::read(dir.join("index.json")) else {
        return false;
    };
    let index: Value = serde_json::from_slice(&bytes).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
}

/// Edits one signature of a signatures file.
fn with_signature(from: &Path, out: &Path, id: &str, edit: impl Fn(&mut Vec<u8>)) -> PathBuf {
    let mut doc = read_json(from);
    for e in doc["signatures"].as_array_mut().unwrap() {
        if e["id"] == id {
            let mut sig = B64.decode(e["signature"].as_str().unwrap()).unwrap();
            edit(&mut sig);
            e["signature"] = B64.encode(sig).into();
        }
    }
    std::fs::write(out, serde_json::to_vec(&doc).unwrap()).unwrap();
    out.to_path_buf()
}

#[test]
fn registry_seal_signed_by_openssl_equals_the_direct_seal_and_bad_signatures_tag_nothing() {
    let tmp = scratch();
    let built = bootc_image::build(tmp.path(), "base");
    let keys = keypair(tmp.path(), "db", 2048);
    let reg = Registry::start(Variant::Plain);
    reg.push_layout(&built.image.oci_ref(), "os/base:1");
    let flags = reg.bootseal_flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let from = reg.image("os/base:1");

    let direct: Value = serde_json::from_slice(
        &run_ok(
            common::seal_cmd(&from, &reg.image("os/direct:1"), &keys)
                .env("SOURCE_DATE_EPOCH", EPOCH)
                .args(["--json", "--quiet"])
                .args(&flags),
        )
        .stdout,
    )
    .unwrap();
    let to = reg.image("os/offline:1");
    let mark = common::sync_repo::access_log_len(&reg);
    let (s1, s2) = two_rounds(&from, &to, &keys, tmp.path(), &flags);
    assert!(
        reg.raw_manifest("os/offline:1").is_none(),
        "prepare tagged nothing"
    );

    let complete = |sigs: &[&Path]| {
        let mut c = offline_seal(&from, &to, &keys.cert, &[]);
        c.args(&flags);
        for s in sigs {
            c.arg("--signatures").arg(s);
        }
        c
    };
    // A flipped bit in the UKI's signature.
    let flipped = with_signature(&s2, &tmp.path().join("flipped.json"), "uki", |s| s[17] ^= 1);
    let e = fails(&mut complete(&[&s1, &flipped]));
    assert!(e.contains("signature uki: does not verify"), "{e}");
    // systemd-boot's signature given as the UKI's (another request's signature).
    let s1_sig = read_json(&s1)["signatures"][0]["signature"].clone();
    let swapped = write_signatures(
        &tmp.path().join("swapped.json"),
        vec![json!({"id": "uki", "signature": s1_sig})],
    );
    let e = fails(&mut complete(&[&s1, &swapped]));
    assert!(e.contains("signature uki: does not verify"), "{e}");
    // The UKI's request signed by another key.
    let other = keypair(tmp.path(), "other", 2048);
    let r2 = tmp.path().join("r2.json");
    let by_other = openssl_sign(&r2, &other.key, &tmp.path().join("other.json"));
    let e = fails(&mut complete(&[&s1, &by_other]));
    assert!(e.contains("signature uki: does not verify"), "{e}");
    // The UKI's signature missing.
    let e = fails(&mut complete(&[&s1]));
    assert!(e.contains("signature uki: not in"), "{e}");
    // A flipped bit in systemd-boot's: refused first, by its id.
    let flipped1 = with_signature(
        &s1,
        &tmp.path().join("flipped1.json"),
        "systemd-boot",
        |s| s[0] ^= 0x80,
    );
    let e = fails(&mut complete(&[&flipped1, &s2]));
    assert!(e.contains("signature systemd-boot: does not verify"), "{e}");
    assert!(
        reg.raw_manifest("os/offline:1").is_none(),
        "no refused run tagged anything"
    );
    // Nor did any of them (or the prepare runs) upload a blob: every signature is checked
    // before the first write.
    let writes = common::sync_repo::writes_since(&reg, mark);
    assert!(writes.is_empty(), "{writes:?}");

    let report: Value =
        serde_json::from_slice(&run_ok(complete(&[&s1, &s2]).arg("--json")).stdout).unwrap();
    assert_eq!(
        report["digest"], direct["digest"],
        "same manifest as the direct seal"
    );
    assert!(
        !common::sync_repo::writes_since(&reg, mark).is_empty(),
        "the completing run's writes are seen in the log"
    );
    let raw = reg.raw_manifest("os/offline:1").unwrap();
    assert_eq!(
        bootseal::manifest::sha256_digest(&raw),
        direct["digest"].as_str().unwrap()
    );
}

/// A signatures file for `request` made on a SoftHSM2 token by `pkcs11-tool --sign -m
/// SHA256-RSA-PKCS` (no openssl, no bootseal in the signing room).
fn pkcs11_tool_sign(hsm: &SoftHsm, label: &str, request: &Path, out: &Path) -> PathBuf {
    let req = read_json(request);
    let dir = out.with_extension("d");
    std::fs::create_dir_all(&dir).unwrap();
    let mut sigs = Vec::new();
    for (i, entry) in req["requests"].as_array().unwrap().iter().enumerate() {
        let data_file = dir.join(format!("{i}.bin"));
        let sig_file = dir.join(format!("{i}.sig"));
        std::fs::write(
            &data_file,
            B64.decode(entry["data"].as_str().unwrap()).unwrap(),
        )
        .unwrap();
        run_ok(
            hsm.tool()
                .args(["--sign", "-m", "SHA256-RSA-PKCS", "--label", label])
                .arg("--input-file")
                .arg(&data_file)
                .arg("--output-file")
                .arg(&sig_file),
        );
        sigs.push(json!({
            "id": entry["id"],
            "signature": B64.encode(std::fs::read(&sig_file).unwrap()),
        }));
    }
    write_signatures(out, sigs)
}

#[test]
fn a_token_signs_the_requests_through_sign_request_and_pkcs11_tool() {
    let tmp = scratch();
    let built = bootc_image::build(tmp.path(), "base");
    let keys = keypair(tmp.path(), "db", 2048);
    let hsm = SoftHsm::new("bootseal-offline");
    hsm.import_key(&keys.key, "db", "01", &[]);
    let from = built.image.oci_ref();
    let out = tmp.path().join("out");
    let direct = stdout_of(
        common::seal_cmd(&from, &format!("oci:{}:direct", out.display()), &keys)
            .env("SOURCE_DATE_EPOCH", EPOCH)
            .arg("--quiet"),
    );
    let to = format!("oci:{}:offline", out.display());

    // Round 1 signed by `bootseal sign-request --key pkcs11:…` in the signing room.
    let r1 = tmp.path().join("r1.json");
    run_ok(&mut offline_seal(
        &from,
        &to,
        &keys.cert,
        &[&"--prepare-signing", &r1],
    ));
    let s1 = tmp.path().join("s1.json");
    run_ok(
        hsm.env(&mut bootseal())
            .args(["sign-request", "--key", &hsm.key_uri("db"), "-o"])
            .arg(&s1)
            .arg(&r1),
    );
    // The same bytes as openssl with the key file: PKCS#1 v1.5 is deterministic.
    let by_openssl = openssl_sign(&r1, &keys.key, &tmp.path().join("s1-openssl.json"));
    assert_eq!(
        read_json(&s1)["signatures"],
        read_json(&by_openssl)["signatures"]
    );

    // Round 2 signed by pkcs11-tool alone.
    let r2 = tmp.path().join("r2.json");
    run_ok(&mut offline_seal(
        &from,
        &to,
        &keys.cert,
        &[&"--signatures", &s1, &"--prepare-signing", &r2],
    ));
    let s2 = pkcs11_tool_sign(&hsm, "db", &r2, &tmp.path().join("s2.json"));
    let printed = stdout_of(&mut offline_seal(
        &from,
        &to,
        &keys.cert,
        &[&"--signatures", &s1, &"--signatures", &s2],
    ));
    let digest = |line: &str| line.trim().rsplit('@').next().unwrap().to_owned();
    assert_eq!(
        digest(&printed),
        digest(&direct),
        "same manifest as the direct seal"
    );

    // A key of another certificate is refused before anything is signed.
    let other = keypair(tmp.path(), "other", 2048);
    let e = fails(
        bootseal()
            .args(["sign-request", "--key"])
            .arg(&other.key)
            .arg("-o")
            .arg(tmp.path().join("never.json"))
            .arg(&r1),
    );
    assert!(e.contains("does not match the certificate"), "{e}");
    assert!(!tmp.path().join("never.json").exists());
}

#[test]
fn sync_asks_once_for_every_tag_and_seals_only_the_signed_ones() {
    use common::sync_repo::{access_log_len, assert_verifies, outcomes, push_bootc, writes_since};
    let tmp = scratch();
    let keys = keypair(tmp.path(), "db", 2048);
    let reg = Registry::start(Variant::Plain);
    push_bootc(&reg, tmp.path(), "app:v1", Vec::new());
    let extra = vec![common::image_builder::E::file("etc/v2", "v2")];
    push_bootc(&reg, tmp.path(), "app:v2", extra);
    let sync = |flags: &[&dyn AsRef<std::ffi::OsStr>]| {
        let mut c = bootseal();
        c.env("SOURCE_DATE_EPOCH", EPOCH)
            .args(["sync", "--tls-verify=false", "--from"])
            .arg(reg.image("app"))
            .arg("--to")
            .arg(reg.image("sealed"))
            .arg("--cert")
            .arg(&keys.cert);
        for f in flags {
            c.arg(f);
        }
        c.output().unwrap()
    };
    let mark = access_log_len(&reg);
    let r1 = tmp.path().join("r1.json");
    let out = sync(&[&"--prepare-signing", &r1]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = outcomes(&out);
    assert_eq!(
        got["v1"],
        "not sealed: awaiting signatures v1:systemd-boot, v1:uki"
    );
    assert_eq!(
        got["v2"],
        "not sealed: awaiting signatures v2:systemd-boot, v2:uki"
    );
    let req1 = read_json(&r1);
    let mut asked = ids(&req1, "requests");
    asked.sort();
    assert_eq!(asked, ["v1:systemd-boot", "v2:systemd-boot"]);
    let s1 = openssl_sign(&r1, &keys.key, &tmp.path().join("s1.json"));
    let r2 = tmp.path().join("r2.json");
    let out = sync(&[&"--signatures", &s1, &"--prepare-signing", &r2]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut asked = ids(&read_json(&r2), "requests");
    asked.sort();
    assert_eq!(asked, ["v1:uki", "v2:uki"]);
    assert!(
        writes_since(&reg, mark).is_empty(),
        "prepare runs write nothing"
    );

    // The signing room signs only v1's UKI: v2 is reported, not sealed.
    let s2 = openssl_sign(&r2, &keys.key, &tmp.path().join("s2.json"));
    let mut doc = read_json(&s2);
    doc["signatures"]
        .as_array_mut()
        .unwrap()
        .retain(|e| e["id"] == "v1:uki");
    std::fs::write(&s2, serde_json::to_vec(&doc).unwrap()).unwrap();
    let out = sync(&[&"--signatures", &s1, &"--signatures", &s2]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = outcomes(&out);
    assert!(got["v1"].starts_with("sealed "), "{got:?}");
    assert_eq!(got["v2"], "not sealed: awaiting signatures v2:uki");
    assert_verifies(&reg.image("sealed:v1"), &keys, &["--tls-verify=false"]);
    assert!(reg.raw_manifest("sealed:v2").is_none());
}

/// 2026-01-02 03:04:05 UTC, for `keys auth` and efitools.
const AUTH_EPOCH: &str = "1767323045";
const OWNER: &str = "8a5e7f3c-1b2d-4e6f-9a0b-c1d2e3f4a5b6";

#[test]
fn keys_auth_signed_offline_equals_sign_efi_sig_list() {
    common::require_tool("sign-efi-sig-list");
    common::require_tool("cert-to-efi-sig-list");
    let d = scratch();
    let k = d.path().join("keys");
    run_ok(
        bootseal()
            .env("SOURCE_DATE_EPOCH", AUTH_EPOCH)
            .args(["keys", "create", "--owner-guid", OWNER])
            .arg(&k),
    );
    let second = keypair(d.path(), "db2", 2048);
    let auth = |extra: &[&dyn AsRef<std::ffi::OsStr>]| {
        let mut c = bootseal();
        c.env("SOURCE_DATE_EPOCH", AUTH_EPOCH)
            .args([
                "keys",
                "auth",
                "--var",
                "db",
                "--append",
                "--owner-guid",
                OWNER,
            ])
            .arg("--signer-cert")
            .arg(k.join("KEK.crt"))
            .arg(&second.cert);
        for e in extra {
            c.arg(e);
        }
        c
    };
    let req = d.path().join("req.json");
    run_ok(&mut auth(&[&"--prepare-signing", &req]));
    assert_eq!(ids(&read_json(&req), "requests"), ["auth:db"]);
    let sigs = openssl_sign(&req, &k.join("KEK.key"), &d.path().join("sigs.json"));
    let ours = d.path().join("ours.auth");
    run_ok(&mut auth(&[&"--signatures", &sigs, &"-o", &ours]));

    let esl = d.path().join("db2.esl");
    run_ok(
        Command::new("cert-to-efi-sig-list")
            .args(["-g", OWNER])
            .arg(&second.cert)
            .arg(&esl),
    );
    let theirs = d.path().join("theirs.auth");
    run_ok(
        Command::new("sign-efi-sig-list")
            .args(["-a", "-t", "2026-01-02 03:04:05", "-k"])
            .arg(k.join("KEK.key"))
            .arg("-c")
            .arg(k.join("KEK.crt"))
            .arg("db")
            .arg(&esl)
            .arg(&theirs),
    );
    assert!(
        std::fs::read(&ours).unwrap() == std::fs::read(&theirs).unwrap(),
        "the offline-signed update differs from sign-efi-sig-list's"
    );
    // Without the fixed time the two runs would sign different bytes: refused up front.
    let e = fails(
        bootseal()
            .env_remove("SOURCE_DATE_EPOCH")
            .args(["keys", "auth", "--var", "db", "--owner-guid", OWNER])
            .arg("--signer-cert")
            .arg(k.join("KEK.crt"))
            .arg(&second.cert)
            .arg("--prepare-signing")
            .arg(d.path().join("never.json")),
    );
    assert!(e.contains("SOURCE_DATE_EPOCH"), "{e}");
}

#[test]
fn one_pe_signed_offline_equals_sign_with_the_key() {
    common::require_tool("sbverify");
    let d = scratch();
    let keys = keypair(d.path(), "db", 2048);
    let uki = common::build_uki(d.path(), "console=ttyS0 composefs=abc rw", "uki.efi");
    let direct = d.path().join("direct.efi");
    run_ok(&mut common::sign_cmd(&keys.key, &keys.cert, &uki, &direct));
    let sign = |extra: &[&dyn AsRef<std::ffi::OsStr>]| {
        let mut c = bootseal();
        c.arg("sign").arg("--cert").arg(&keys.cert).arg(&uki);
        for e in extra {
            c.arg(e);
        }
        c
    };
    let req = d.path().join("req.json");
    run_ok(&mut sign(&[&"--prepare-signing", &req]));
    let request = read_json(&req);
    assert_eq!(ids(&request, "requests"), ["authenticode"]);
    let sigs = openssl_sign(&req, &keys.key, &d.path().join("sigs.json"));
    let offline = d.path().join("offline.efi");
    run_ok(&mut sign(&[&"--signatures", &sigs, &"-o", &offline]));
    assert!(std::fs::read(&offline).unwrap() == std::fs::read(&direct).unwrap());
    run_ok(
        Command::new("sbverify")
            .arg("--cert")
            .arg(&keys.cert)
            .arg(&offline),
    );
    // A signature of another file is refused by id, and nothing is written.
    let other = d.path().join("other.efi");
    std::fs::write(&other, {
        let mut b = std::fs::read(&uki).unwrap();
        let n = b.len();
        b[n - 1] ^= 1;
        b
    })
    .unwrap();
    let bad = d.path().join("bad.efi");
    let e = fails(
        bootseal()
            .arg("sign")
            .arg("--cert")
            .arg(&keys.cert)
            .arg(&other)
            .arg("--signatures")
            .arg(&sigs)
            .arg("-o")
            .arg(&bad),
    );
    assert!(e.contains("signature authenticode: does not verify"), "{e}");
    assert!(!bad.exists());
}
