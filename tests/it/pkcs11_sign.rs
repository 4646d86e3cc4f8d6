//! Keys on a PKCS#11 token (SoftHSM2, tokens made per test): `bootseal sign` and
//! `build-uki --pcr-private-key` with `pkcs11:` URIs. Keys are imported sensitive and
//! non-extractable, or generated on the token; signatures are checked by sbverify,
//! osslsigncode and pesign, and PKCS#1 v1.5 being deterministic, a token signature equals the
//! key file's byte for byte. Every error names what to fix in one line, never the PIN.

use crate::common;

use base64::Engine;
use common::pe_verify::check_with_tools;
use common::softhsm::{MODULE, PIN, SoftHsm};
use common::*;
use std::path::Path;
use std::process::{Command, Output};

fn sign_cmd(key: &str, cert: &str, input: &Path, out: &Path) -> Command {
    let mut c = bootseal();
    c.args(["sign", "--key", key, "--cert", cert])
        .arg(input)
        .arg("-o")
        .arg(out);
    c
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Neither stdout nor stderr mentions the PIN.
fn assert_no_pin(o: &Output) {
    for s in [&o.stdout, &o.stderr] {
        let text = String::from_utf8_lossy(s);
        assert!(!text.contains(PIN), "the PIN was shown: {text}");
    }
}

#[test]
fn token_keys_sign_like_the_key_file_for_rsa_2048_3072_4096() {
    let d = scratch();
    let uki = build_uki(d.path(), "console=ttyS0 composefs=abc rw", "uki.efi");
    let hsm = SoftHsm::new("bootseal-sign");
    for (i, bits) in [2048u32, 3072, 4096].into_iter().enumerate() {
        let kp = keypair(d.path(), &format!("db{bits}"), bits);
        let label = format!("db{bits}");
        let id = format!("0{}", i + 1);
        hsm.import_key(&kp.key, &label, &id, &[]);
        hsm.import_cert(&kp.cert, &label, &id);
        let listing = hsm.describe_private_key(&label);
        assert!(
            listing.contains("Access:     sensitive")
                && !listing
                    .replace("never extractable", "")
                    .contains("extractable"),
            "imported key must be sensitive and not extractable: {listing}"
        );

        let from_file = d.path().join(format!("file{bits}.efi"));
        run_ok(&mut sign_cmd(
            path_str(&kp.key),
            path_str(&kp.cert),
            &uki,
            &from_file,
        ));
        let from_token = d.path().join(format!("token{bits}.efi"));
        let out = run_ok(hsm.env(&mut sign_cmd(
            &hsm.key_uri(&label),
            path_str(&kp.cert),
            &uki,
            &from_token,
        )));
        assert_no_pin(&out);
        assert_eq!(
            std::fs::read(&from_token).unwrap(),
            std::fs::read(&from_file).unwrap(),
            "RSA {bits}: token and key file give the same signed image"
        );
        check_with_tools(&from_token, &kp.cert, &kp.cn);

        // The certificate read from the token, too.
        let cert_on_token = d.path().join(format!("token-cert{bits}.efi"));
        run_ok(hsm.env(&mut sign_cmd(
            &hsm.key_uri(&label),
            &hsm.cert_uri(&label),
            &uki,
            &cert_on_token,
        )));
        assert_eq!(
            std::fs::read(&cert_on_token).unwrap(),
            std::fs::read(&from_file).unwrap()
        );
        // Without --cert, the certificate object with the key's label is used.
        let implied = d.path().join(format!("token-implied{bits}.efi"));
        run_ok(
            hsm.env(&mut bootseal())
                .args(["sign", "--key", &hsm.key_uri(&label)])
                .arg(&uki)
                .arg("-o")
                .arg(&implied),
        );
        assert_eq!(
            std::fs::read(&implied).unwrap(),
            std::fs::read(&from_file).unwrap()
        );
        // verify-pe takes the trusted certificate from the token as well.
        run_ok(
            hsm.env(&mut bootseal())
                .arg("verify-pe")
                .arg(&from_token)
                .arg("--cert")
                .arg(hsm.cert_uri(&label)),
        );
    }
}

#[test]
fn pin_sources_module_sources_and_hashing_on_the_token() {
    let d = scratch();
    let hsm = SoftHsm::new("bootseal-pins");
    let kp = keypair(d.path(), "db", 2048);
    hsm.import_key(&kp.key, "db", "01", &[]);
    // The same key once more, allowed only the hash-and-sign mechanism: the token hashes
    // (CKM_SHA256_RSA_PKCS) instead of signing our DigestInfo (CKM_RSA_PKCS).
    hsm.import_key(
        &kp.key,
        "db-hashing",
        "02",
        &["--allowed-mechanisms", "SHA256-RSA-PKCS"],
    );
    let expected = d.path().join("file.efi");
    run_ok(&mut sign_cmd(
        path_str(&kp.key),
        path_str(&kp.cert),
        Path::new(STUB),
        &expected,
    ));
    let expected = std::fs::read(expected).unwrap();
    let pin_file = d.path().join("pin");
    std::fs::write(&pin_file, format!("{PIN}\n")).unwrap();
    let bare = format!("pkcs11:token={};object=db", hsm.label);
    let with_module = format!("{bare}?module-path={MODULE}");
    // (URI, extra flags, extra environment)
    type Case = (String, Vec<String>, Vec<(&'static str, String)>);
    let cases: Vec<Case> = vec![
        (
            format!("{with_module}&pin-source=file:{}", pin_file.display()),
            vec![],
            vec![],
        ),
        (
            with_module.clone(),
            vec!["--key-pass-file".into(), pin_file.display().to_string()],
            vec![],
        ),
        (
            with_module.clone(),
            vec!["--key-pass-env".into(), "TOKEN_PIN".into()],
            vec![("TOKEN_PIN", PIN.to_string())],
        ),
        (
            format!("{bare}?pin-value={PIN}"),
            vec!["--pkcs11-module".into(), MODULE.into()],
            vec![],
        ),
        (
            format!("{bare}?pin-value={PIN}"),
            vec![],
            vec![("BOOTSEAL_PKCS11_MODULE", MODULE.to_string())],
        ),
        (
            format!(
                "pkcs11:token={};object=db-hashing?module-path={MODULE}&pin-value={PIN}",
                hsm.label
            ),
            vec![],
            vec![],
        ),
    ];
    for (i, (uri, flags, env)) in cases.iter().enumerate() {
        let out = d.path().join(format!("out{i}.efi"));
        let mut c = sign_cmd(uri, path_str(&kp.cert), Path::new(STUB), &out);
        c.args(flags);
        for (k, v) in env {
            c.env(k, v);
        }
        let o = run_ok(hsm.env(&mut c));
        assert_no_pin(&o);
        assert_eq!(std::fs::read(&out).unwrap(), expected, "case {i}: {uri}");
    }

    // No module named anywhere: p11-kit's proxy module reaches SoftHSM through its
    // registration (Debian p11-kit-modules + softhsm2), or module-name names it.
    require_file(
        &format!(
            "/usr/lib/{}-linux-gnu/p11-kit-proxy.so",
            std::env::consts::ARCH
        ),
        "p11-kit-modules",
    );
    for uri in [
        format!("{bare}?pin-value={PIN}"),
        format!("{bare}?module-name=softhsm2&pin-value={PIN}"),
    ] {
        let out = d.path().join("proxy.efi");
        run_ok(
            hsm.env(&mut sign_cmd(
                &uri,
                path_str(&kp.cert),
                Path::new(STUB),
                &out,
            ))
            .env_remove("BOOTSEAL_PKCS11_MODULE"),
        );
        assert_eq!(std::fs::read(&out).unwrap(), expected, "{uri}");
    }
}

#[test]
fn key_generated_on_the_token_with_a_ca_issued_certificate() {
    let d = scratch();
    let hsm = SoftHsm::new("bootseal-gen");
    hsm.generate("rsa:3072", "gen", "0a");
    let listing = hsm.describe_private_key("gen");
    assert!(
        listing.contains("never extractable") && listing.contains("local"),
        "{listing}"
    );
    // A certificate for the token's public key, issued by a CA key file with openssl.
    let public = d.path().join("gen.pub.pem");
    hsm.public_key_pem("0a", &public);
    let ca = keypair(d.path(), "ca", 2048);
    let throwaway = keypair(d.path(), "csr-key", 2048);
    let csr = d.path().join("gen.csr");
    run_ok(
        Command::new("openssl")
            .args(["req", "-new", "-subj", "/CN=bootseal token key/", "-key"])
            .arg(&throwaway.key)
            .arg("-out")
            .arg(&csr),
    );
    let leaf = d.path().join("gen.crt");
    run_ok(
        Command::new("openssl")
            .args(["x509", "-req", "-days", "30", "-sha256", "-in"])
            .arg(&csr)
            .arg("-force_pubkey")
            .arg(&public)
            .arg("-CA")
            .arg(&ca.cert)
            .arg("-CAkey")
            .arg(&ca.key)
            .arg("-set_serial")
            .arg("7")
            .arg("-out")
            .arg(&leaf),
    );
    let uki = build_uki(d.path(), "console=ttyS0 composefs=abc rw", "uki.efi");
    let signed = d.path().join("signed.efi");
    run_ok(hsm.env(&mut sign_cmd(
        &hsm.key_uri("gen"),
        path_str(&leaf),
        &uki,
        &signed,
    )));
    // Verified against the CA: the leaf is embedded and chains to it.
    check_with_tools(&signed, &ca.cert, "bootseal token key");
}

/// `.pcrsig` signed by the token is the key file's, and each signature verifies with openssl.
#[test]
fn pcrsig_signed_on_the_token() {
    let d = scratch();
    let (key, public) = pcr_keypair(d.path());
    let hsm = SoftHsm::new("bootseal-pcr");
    hsm.import_key(&key, "pcr", "01", &[]);
    // All four banks through the token's own hashing, too.
    hsm.import_key(
        &key,
        "pcr-hashing",
        "02",
        &[
            "--allowed-mechanisms",
            "SHA1-RSA-PKCS,SHA256-RSA-PKCS,SHA384-RSA-PKCS,SHA512-RSA-PKCS",
        ],
    );
    let osrel = d.path().join("os-release");
    std::fs::write(&osrel, "ID=test\n").unwrap();
    let build = |pcr_key: &str, out: &Path| {
        let o = run_ok(
            hsm.env(
                bootseal()
                    .arg("build-uki")
                    .arg("--linux")
                    .arg(kernel())
                    .arg("--os-release")
                    .arg(&osrel)
                    .arg("--stub")
                    .arg(STUB)
                    .args(["--allow-section-overlap", "--pcr-private-key", pcr_key])
                    .arg("-o")
                    .arg(out),
            ),
        );
        assert_no_pin(&o);
        objcopy_section(out, ".pcrsig", d.path())
    };
    let from_file = build(path_str(&key), &d.path().join("file.efi"));
    let token_uki = d.path().join("token.efi");
    let from_token = build(&hsm.key_uri("pcr"), &token_uki);
    let from_hashing = build(&hsm.key_uri("pcr-hashing"), &d.path().join("hashing.efi"));
    assert_eq!(from_token, from_file);
    assert_eq!(from_hashing, from_file);
    assert_eq!(
        objcopy_section(&token_uki, ".pcrpkey", d.path()),
        std::fs::read(&public).unwrap()
    );
    let sig: serde_json::Value = serde_json::from_slice(&from_token).unwrap();
    let mut checked = 0;
    for (bank, alg) in [("sha1", "sha1"), ("sha256", "sha256"), ("sha384", "sha384")] {
        for e in sig[bank].as_array().unwrap() {
            let pol = hex::decode(e["pol"].as_str().unwrap()).unwrap();
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
            checked += 1;
        }
    }
    assert_eq!(checked, 12, "4 phase paths x 3 banks");
}

/// Set CKA_SIGN to false on the private key `label` (pkcs11-tool cannot), through the module.
/// SoftHSM reads `SOFTHSM2_CONF` once per process, so this runs [`forbid_signing_helper`] in a
/// child test process with the token's configuration.
fn forbid_signing(hsm: &SoftHsm, label: &str) {
    let out = stdout_of(
        hsm.env(&mut Command::new(std::env::current_exe().unwrap()))
            .args([
                "--exact",
                "pkcs11_sign::forbid_signing_helper",
                "--nocapture",
            ])
            .env("BOOTSEAL_TEST_FORBID_SIGNING", label)
            .env("BOOTSEAL_TEST_TOKEN", &hsm.label),
    );
    assert!(out.contains("CKA_SIGN cleared"), "{out}");
}

/// The child half of [`forbid_signing`]; does nothing when run as an ordinary test.
#[test]
fn forbid_signing_helper() {
    use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
    use cryptoki::object::{Attribute, ObjectClass};
    use cryptoki::session::UserType;
    use cryptoki::types::AuthPin;
    let (Some(label), Some(token)) = (
        std::env::var("BOOTSEAL_TEST_FORBID_SIGNING").ok(),
        std::env::var("BOOTSEAL_TEST_TOKEN").ok(),
    ) else {
        return;
    };
    let pkcs11 = Pkcs11::new(MODULE).unwrap();
    pkcs11
        .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    let slot = pkcs11
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| pkcs11.get_token_info(*s).unwrap().label().trim_end() == token)
        .unwrap();
    let session = pkcs11.open_rw_session(slot).unwrap();
    session
        .login(UserType::User, Some(&AuthPin::new(PIN.into())))
        .unwrap();
    let key = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .unwrap()[0];
    session
        .update_attributes(key, &[Attribute::Sign(false)])
        .unwrap();
    println!("CKA_SIGN cleared");
}

#[test]
fn token_errors_are_one_line_naming_the_fix_and_never_the_pin() {
    let d = scratch();
    let hsm = SoftHsm::new("bootseal-errors");
    let kp = keypair(d.path(), "db", 2048);
    let other = keypair(d.path(), "other", 2048);
    hsm.import_key(&kp.key, "db", "01", &[]);
    hsm.import_key(
        &kp.key,
        "no-sign-mechanism",
        "02",
        &["--allowed-mechanisms", "RSA-PKCS-OAEP"],
    );
    hsm.import_key(&kp.key, "sign-false", "03", &[]);
    forbid_signing(&hsm, "sign-false");
    hsm.generate("EC:prime256v1", "ec", "04");
    let out = d.path().join("out.efi");
    let t = &hsm.label;
    let uri = |path: &str, query: &str| format!("pkcs11:{path}?{query}");
    let good_query = format!("module-path={MODULE}&pin-value={PIN}");
    let fails = |key: String, cert: &Path, env: &[(&str, &str)], want: &[&str]| {
        let mut c = sign_cmd(&key, path_str(cert), Path::new(STUB), &out);
        for (k, v) in env {
            c.env(k, v);
        }
        let o = hsm.env(&mut c).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(!o.status.success(), "{key} should fail");
        assert!(!out.exists(), "{key}: nothing written");
        assert_no_pin(&o);
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        for w in want {
            assert!(err.contains(w), "{key}: expected {w:?} in: {err}");
        }
    };
    fails(
        uri(
            &format!("token={t};object=db"),
            &format!("module-path=/nonexistent/libnope.so&pin-value={PIN}"),
        ),
        &kp.cert,
        &[],
        &["cannot load PKCS#11 module /nonexistent/libnope.so (from module-path in the URI)"],
    );
    fails(
        uri(&format!("token={t};object=db"), &format!("pin-value={PIN}")),
        &kp.cert,
        &[("BOOTSEAL_PKCS11_MODULE", "/usr/lib/nope.so")],
        &["cannot load PKCS#11 module /usr/lib/nope.so (from BOOTSEAL_PKCS11_MODULE)"],
    );
    fails(
        uri(
            &format!("token={t};object=db"),
            &format!("module-path={}&pin-value={PIN}", kp.cert.display()),
        ),
        &kp.cert,
        &[],
        &["cannot load PKCS#11 module", "db.crt"],
    );
    fails(
        uri("token=no-such-token;object=db", &good_query),
        &kp.cert,
        &[],
        &[
            "no token matches token=no-such-token",
            "tokens found: 'bootseal-errors'",
        ],
    );
    fails(
        uri(&format!("token={t};object=no-such-key"), &good_query),
        &kp.cert,
        &[],
        &[
            "token 'bootseal-errors' has no private key matching object=no-such-key",
            "'db' id %01",
            "'ec' id %04",
        ],
    );
    fails(
        uri(
            &format!("token={t};object=db"),
            &format!("module-path={MODULE}&pin-value=wrong-pin"),
        ),
        &kp.cert,
        &[],
        &["wrong PIN for token 'bootseal-errors'"],
    );
    fails(
        uri(
            &format!("token={t};object=db"),
            &format!("module-path={MODULE}"),
        ),
        &kp.cert,
        &[],
        &["token 'bootseal-errors' needs a PIN", "--key-pass-file"],
    );
    fails(
        uri(&format!("token={t};object=sign-false"), &good_query),
        &kp.cert,
        &[],
        &[
            "'sign-false' id %03 on token 'bootseal-errors' is not allowed to sign: its CKA_SIGN is false",
        ],
    );
    fails(
        uri(&format!("token={t};object=no-sign-mechanism"), &good_query),
        &kp.cert,
        &[],
        &["is not allowed to sign: its CKA_ALLOWED_MECHANISMS (CKM_RSA_PKCS_OAEP)"],
    );
    fails(
        uri(&format!("token={t};object=ec"), &good_query),
        &kp.cert,
        &[],
        &["'ec' id %04 on token 'bootseal-errors' is not an RSA key"],
    );
    fails(
        uri(&format!("token={t};object=db"), &good_query),
        &other.cert,
        &[],
        &["private key does not match the certificate (subject CN=bootseal test other"],
    );
    fails(
        uri(&format!("token={t};object=db;type=cert"), &good_query),
        &kp.cert,
        &[],
        &["a signing key needs type=private, not type=cert"],
    );
    fails(
        format!("pkcs11:token={t};objekt=db?pin-value={PIN}"),
        &kp.cert,
        &[],
        &["bad pkcs11: URI: unknown path attribute \"objekt\""],
    );
    // Last: a locked PIN (the lock stays).
    hsm.lock_user_pin();
    fails(
        uri(&format!("token={t};object=db"), &good_query),
        &kp.cert,
        &[],
        &["the user PIN of token 'bootseal-errors' is locked"],
    );
}
