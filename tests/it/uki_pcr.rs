//! PCR 11 prediction (`build-uki --measure`) and `.pcrpkey`/`.pcrsig`, checked against an
//! independent replay with objcopy + openssl, and the PCR signatures with `openssl dgst -verify`.
//! (The algorithm itself is pinned by the systemd-measure known-answer tests in
//! src/uki/pcr.rs and src/uki/pcrsig.rs.)

use crate::common;

use common::*;
use std::path::Path;
use std::process::Command;

fn openssl_digest(alg: &str, data: &[u8], dir: &Path) -> Vec<u8> {
    let f = dir.join("dgst-in");
    std::fs::write(&f, data).unwrap();
    run_ok(
        Command::new("openssl")
            .arg("dgst")
            .arg(format!("-{alg}"))
            .arg("-binary")
            .arg(&f),
    )
    .stdout
}

/// PCR 11 replay with openssl: extend(H(name\0)), extend(H(data)) per section.
fn replay(alg: &str, sections: &[(&str, Vec<u8>)], words: &[&str], dir: &Path) -> Vec<u8> {
    let size = openssl_digest(alg, b"", dir).len();
    let mut pcr = vec![0u8; size];
    let extend = |pcr: &mut Vec<u8>, x: Vec<u8>| {
        let mut buf = pcr.clone();
        buf.extend(x);
        *pcr = openssl_digest(alg, &buf, dir);
    };
    for (name, data) in sections {
        let mut n = name.as_bytes().to_vec();
        n.push(0);
        extend(&mut pcr, openssl_digest(alg, &n, dir));
        extend(&mut pcr, openssl_digest(alg, data, dir));
    }
    for w in words {
        extend(&mut pcr, openssl_digest(alg, w.as_bytes(), dir));
    }
    pcr
}

#[test]
fn measure_matches_replay_of_sections_the_252_stub_measures() {
    let d = scratch();
    let initrd = initramfs(d.path(), None);
    let osrel = d.path().join("os-release");
    std::fs::write(&osrel, "ID=test\n").unwrap();
    let uki = d.path().join("uki.efi");
    let out = stdout_of(
        bootseal()
            .arg("build-uki")
            .arg("--linux")
            .arg(kernel())
            .arg("--initrd")
            .arg(&initrd)
            .arg("--os-release")
            .arg(&osrel)
            .arg("--stub")
            .arg(STUB)
            .arg("--cmdline")
            .arg("console=ttyS0 composefs=abc rw")
            .arg("--allow-section-overlap")
            .args([
                "--measure",
                "--json",
                "--pcr-banks",
                "sha1,sha256",
                "--phases",
                "enter-initrd,enter-initrd:leave-initrd",
            ])
            .arg("-o")
            .arg(&uki),
    );
    let j: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    // Debian's 252 stub measures .linux .osrel .cmdline .initrd (not .uname/.sbat).
    let secs: Vec<(&str, Vec<u8>)> = [".linux", ".osrel", ".cmdline", ".initrd"]
        .iter()
        .map(|n| (*n, objcopy_section(&uki, n, d.path())))
        .collect();
    for (bank, alg) in [("sha1", "sha1"), ("sha256", "sha256")] {
        let arr = j[bank]
            .as_array()
            .unwrap_or_else(|| panic!("no {bank} in {j}"));
        assert_eq!(arr.len(), 3);
        assert_eq!(arr[0]["pcr"], 11);
        assert!(arr[0].get("phase").is_none());
        assert_eq!(
            arr[0]["hash"].as_str().unwrap(),
            hex::encode(replay(alg, &secs, &[], d.path()))
        );
        assert_eq!(arr[1]["phase"], "enter-initrd");
        assert_eq!(
            arr[1]["hash"].as_str().unwrap(),
            hex::encode(replay(alg, &secs, &["enter-initrd"], d.path()))
        );
        assert_eq!(
            arr[2]["hash"].as_str().unwrap(),
            hex::encode(replay(
                alg,
                &secs,
                &["enter-initrd", "leave-initrd"],
                d.path()
            ))
        );
    }
    // inspect, reading the built image, predicts the same value.
    let r: serde_json::Value = serde_json::from_str(&stdout_of(
        bootseal().arg("inspect").arg("--json").arg(&uki),
    ))
    .unwrap();
    assert_eq!(r["pcr11"]["sha256"][0]["hash"], j["sha256"][0]["hash"]);
    // A >= 254 stub would also measure .uname and .sbat: predicting for 257 differs.
    let out257 = stdout_of(
        bootseal()
            .arg("build-uki")
            .arg("--linux")
            .arg(kernel())
            .arg("--initrd")
            .arg(&initrd)
            .arg("--os-release")
            .arg(&osrel)
            .arg("--stub")
            .arg(STUB)
            .arg("--cmdline")
            .arg("console=ttyS0 composefs=abc rw")
            .args([
                "--allow-section-overlap",
                "--stub-version",
                "257",
                "--measure",
                "--json",
                "--pcr-banks",
                "sha256",
            ])
            .arg("-o")
            .arg(d.path().join("u257.efi")),
    );
    let j257: serde_json::Value = serde_json::from_str(out257.trim()).unwrap();
    let mut secs257 = secs.clone();
    secs257.push((".uname", objcopy_section(&uki, ".uname", d.path())));
    secs257.push((".sbat", objcopy_section(&uki, ".sbat", d.path())));
    assert_eq!(
        j257["sha256"][0]["hash"].as_str().unwrap(),
        hex::encode(replay("sha256", &secs257, &[], d.path()))
    );
}

#[test]
fn pcrsig_signatures_verify_with_openssl() {
    let d = scratch();
    // ukify genkey writes PKCS#1; use that form for the PCR key.
    let (key, public) = pcr_keypair(d.path());
    let osrel = d.path().join("os-release");
    std::fs::write(&osrel, "ID=test\n").unwrap();
    let uki = d.path().join("uki.efi");
    let measured = stdout_of(
        bootseal()
            .arg("build-uki")
            .arg("--linux")
            .arg(kernel())
            .arg("--os-release")
            .arg(&osrel)
            .arg("--stub")
            .arg(STUB)
            .arg("--pcr-private-key")
            .arg(&key)
            .args([
                "--allow-section-overlap",
                "--measure",
                "--json",
                "--pcr-banks",
                "sha1,sha256",
            ])
            .arg("-o")
            .arg(&uki),
    );
    let m: serde_json::Value = serde_json::from_str(measured.trim()).unwrap();
    let names: Vec<String> = stdout_of(Command::new("objdump").arg("-h").arg(&uki))
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 7 && f[0].parse::<u32>().is_ok()).then(|| f[1].to_string())
        })
        .collect();
    assert_eq!(
        &names[8..],
        [".osrel", ".uname", ".pcrpkey", ".linux", ".pcrsig"]
    );
    // .pcrpkey is the PEM SubjectPublicKeyInfo, as openssl writes it.
    assert_eq!(
        objcopy_section(&uki, ".pcrpkey", d.path()),
        std::fs::read(&public).unwrap()
    );

    let sig_text = String::from_utf8(objcopy_section(&uki, ".pcrsig", d.path())).unwrap();
    assert!(
        sig_text.starts_with("{\"sha1\": [{\"pcrs\": [11], \"pkfp\": \""),
        "{sig_text}"
    );
    let sig: serde_json::Value = serde_json::from_str(&sig_text).unwrap();
    let pkcs1 = run_ok(
        Command::new("openssl")
            .args(["rsa", "-in"])
            .arg(&key)
            .args(["-RSAPublicKey_out", "-outform", "DER"]),
    )
    .stdout;
    let pkfp = hex::encode(openssl_digest("sha256", &pkcs1, d.path()));
    for (bank, alg, tpm_alg) in [
        ("sha1", "sha1", [0u8, 4]),
        ("sha256", "sha256", [0u8, 0x0b]),
    ] {
        let entries = sig[bank].as_array().unwrap();
        assert_eq!(entries.len(), 4, "one entry per default phase path");
        // measured[bank] = [sections only, then the four default phase paths]
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(e["pcrs"], serde_json::json!([11]));
            assert_eq!(e["pkfp"].as_str().unwrap(), pkfp);
            let pcr = hex::decode(m[bank][i + 1]["hash"].as_str().unwrap()).unwrap();
            // TPM2 PolicyPCR: H(0^32 || CC_PolicyPCR || TPML_PCR_SELECTION || H(pcr)).
            let mut msg = vec![0u8; 32];
            msg.extend([0, 0, 1, 0x7f, 0, 0, 0, 1]);
            msg.extend(tpm_alg);
            msg.extend([3, 0, 8, 0]);
            msg.extend(openssl_digest("sha256", &pcr, d.path()));
            let pol = openssl_digest("sha256", &msg, d.path());
            assert_eq!(e["pol"].as_str().unwrap(), hex::encode(&pol));
            use base64::Engine;
            let s = base64::engine::general_purpose::STANDARD
                .decode(e["sig"].as_str().unwrap())
                .unwrap();
            let (sf, pf) = (d.path().join("sig.bin"), d.path().join("pol.bin"));
            std::fs::write(&sf, s).unwrap();
            std::fs::write(&pf, &pol).unwrap();
            run_ok(
                Command::new("openssl")
                    .arg("dgst")
                    .arg(format!("-{alg}"))
                    .arg("-verify")
                    .arg(&public)
                    .arg("-signature")
                    .arg(&sf)
                    .arg(&pf),
            );
        }
    }
}
