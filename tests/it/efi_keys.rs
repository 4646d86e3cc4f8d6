//! `bootseal keys create` / `keys auth` against efitools (Debian `efitools`), an independent
//! implementation: the signature lists must equal `cert-to-efi-sig-list`'s and the .auth
//! updates must equal `sign-efi-sig-list`'s byte for byte (same key, certificate and
//! timestamp; RSA PKCS#1 v1.5 is deterministic), and `sig-list-to-certs` must get the
//! certificates back out.

use crate::common;

use common::*;
use std::path::Path;
use std::process::Command;

const OWNER: &str = "8a5e7f3c-1b2d-4e6f-9a0b-c1d2e3f4a5b6";
/// 2026-01-02 03:04:05 UTC.
const EPOCH: &str = "1767323045";
const EFITOOLS_TIME: &str = "2026-01-02 03:04:05";

fn create(dir: &Path) {
    run_ok(
        bootseal()
            .env("SOURCE_DATE_EPOCH", EPOCH)
            .args(["keys", "create", "--subject-prefix", "Test, Inc."])
            .args(["--owner-guid", OWNER])
            .arg(dir),
    );
}

fn efitools_auth(dir: &Path, var: &str, signer: &str, esl: &Path, extra: &[&str]) -> Vec<u8> {
    require_tool("sign-efi-sig-list");
    let out = dir.join(format!("efitools-{var}.auth"));
    run_ok(
        Command::new("sign-efi-sig-list")
            .args(extra)
            .args(["-t", EFITOOLS_TIME, "-k"])
            .arg(dir.join(format!("{signer}.key")))
            .arg("-c")
            .arg(dir.join(format!("{signer}.crt")))
            .arg(var)
            .arg(esl)
            .arg(&out),
    );
    std::fs::read(out).unwrap()
}

#[test]
fn keys_create_matches_efitools() {
    require_tool("cert-to-efi-sig-list");
    require_tool("sig-list-to-certs");
    let d = scratch();
    let k = d.path().join("keys");
    create(&k);
    assert_eq!(
        std::fs::read_to_string(k.join("GUID.txt")).unwrap(),
        format!("{OWNER}\n")
    );
    for (var, signer) in [("PK", "PK"), ("KEK", "PK"), ("db", "KEK")] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(k.join(format!("{var}.key")))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{var}.key mode {mode:o}");
        // The certificate parses with openssl and names the prefix.
        let subject = stdout_of(
            Command::new("openssl")
                .args(["x509", "-noout", "-subject", "-in"])
                .arg(k.join(format!("{var}.crt"))),
        );
        assert!(subject.contains(&format!("Test, Inc. {var}")), "{subject}");
        // .esl as efitools writes it.
        let reference = d.path().join(format!("ref-{var}.esl"));
        run_ok(
            Command::new("cert-to-efi-sig-list")
                .args(["-g", OWNER])
                .arg(k.join(format!("{var}.crt")))
                .arg(&reference),
        );
        let esl = k.join(format!("{var}.esl"));
        assert_eq!(
            std::fs::read(&esl).unwrap(),
            std::fs::read(&reference).unwrap(),
            "{var}.esl"
        );
        // ... and the certificate comes back out of it.
        let prefix = d.path().join(format!("out-{var}"));
        run_ok(Command::new("sig-list-to-certs").arg(&esl).arg(&prefix));
        assert_eq!(
            std::fs::read(d.path().join(format!("out-{var}-0.der"))).unwrap(),
            std::fs::read(k.join(format!("{var}.cer"))).unwrap()
        );
        // .auth byte-identical to sign-efi-sig-list with the same signer and time.
        let ours = std::fs::read(k.join(format!("{var}.auth"))).unwrap();
        let theirs = efitools_auth(d.path().join("keys").as_path(), var, signer, &esl, &[]);
        assert_eq!(ours.len(), theirs.len(), "{var}.auth length");
        assert!(
            ours == theirs,
            "{var}.auth differs from sign-efi-sig-list's"
        );
    }
}

#[test]
fn keys_create_refuses_to_overwrite() {
    let d = scratch();
    let k = d.path().join("keys");
    std::fs::create_dir(&k).unwrap();
    std::fs::write(k.join("db.key"), b"precious").unwrap();
    let out = bootseal()
        .args(["keys", "create"])
        .arg(&k)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("db.key already exists"), "{err}");
    assert_eq!(std::fs::read(k.join("db.key")).unwrap(), b"precious");
    assert!(!k.join("PK.key").exists(), "wrote keys before refusing");
    let out = bootseal()
        .args(["keys", "create", "--bits", "1024"])
        .arg(d.path().join("other"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let out = bootseal()
        .args(["keys", "create", "--owner-guid", "not-a-guid"])
        .arg(d.path().join("other"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("not-a-guid"), "{err}");
}

#[test]
fn keys_auth_append_matches_efitools() {
    let d = scratch();
    let k = d.path().join("keys");
    create(&k);
    let second = keypair(d.path(), "db2", 2048);
    let ours = d.path().join("db-append.auth");
    run_ok(
        bootseal()
            .env("SOURCE_DATE_EPOCH", EPOCH)
            .args([
                "keys",
                "auth",
                "--var",
                "db",
                "--append",
                "--owner-guid",
                OWNER,
            ])
            .arg("--signer-key")
            .arg(k.join("KEK.key"))
            .arg("--signer-cert")
            .arg(k.join("KEK.crt"))
            .arg(&second.cert)
            .arg("-o")
            .arg(&ours),
    );
    let esl = d.path().join("db2.esl");
    run_ok(
        Command::new("cert-to-efi-sig-list")
            .args(["-g", OWNER])
            .arg(&second.cert)
            .arg(&esl),
    );
    let theirs = efitools_auth(&k, "db", "KEK", &esl, &["-a"]);
    assert!(
        std::fs::read(&ours).unwrap() == theirs,
        "append update differs from sign-efi-sig-list -a"
    );

    // A key that does not match its certificate is refused, naming the file.
    let out = bootseal()
        .args(["keys", "auth", "--var", "db"])
        .arg("--signer-key")
        .arg(k.join("PK.key"))
        .arg("--signer-cert")
        .arg(k.join("KEK.crt"))
        .arg(&second.cert)
        .arg("-o")
        .arg(d.path().join("x.auth"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("PK.key"), "{err}");
    let out = bootseal()
        .args(["keys", "auth", "--var", "boot"])
        .arg("--signer-key")
        .arg(k.join("PK.key"))
        .arg("--signer-cert")
        .arg(k.join("PK.crt"))
        .arg("-o")
        .arg(d.path().join("x.auth"))
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn keys_create_db_only_appends_like_efitools() {
    require_tool("cert-to-efi-sig-list");
    let d = scratch();
    let machine = d.path().join("machine");
    create(&machine);
    let added = d.path().join("added");
    let db_only = || {
        let mut c = bootseal();
        c.env("SOURCE_DATE_EPOCH", EPOCH)
            .args(["keys", "create", "--db-only", "--owner-guid", OWNER])
            .arg("--kek-key")
            .arg(machine.join("KEK.key"))
            .arg("--kek-cert")
            .arg(machine.join("KEK.crt"))
            .arg(&added);
        c
    };
    run_ok(&mut db_only());
    let mut names: Vec<String> = std::fs::read_dir(&added)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["db.auth", "db.cer", "db.crt", "db.esl", "db.key"]);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(added.join("db.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // The list is efitools' for the new certificate; the update is `sign-efi-sig-list -a`
    // by the machine's KEK, byte for byte.
    let esl = d.path().join("efitools-db.esl");
    run_ok(
        Command::new("cert-to-efi-sig-list")
            .args(["-g", OWNER])
            .arg(added.join("db.crt"))
            .arg(&esl),
    );
    assert_eq!(
        std::fs::read(added.join("db.esl")).unwrap(),
        std::fs::read(&esl).unwrap()
    );
    let theirs = efitools_auth(&machine, "db", "KEK", &esl, &["-a"]);
    assert!(
        std::fs::read(added.join("db.auth")).unwrap() == theirs,
        "db-only update differs from sign-efi-sig-list -a"
    );
    assert_ne!(
        std::fs::read(added.join("db.crt")).unwrap(),
        std::fs::read(machine.join("db.crt")).unwrap(),
        "a new key, not the machine's"
    );

    // Never over existing keys; never without the KEK.
    let out = db_only().output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let out = bootseal()
        .args(["keys", "create", "--db-only"])
        .arg(d.path().join("other"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--kek-key"));
    assert!(!d.path().join("other").exists());
}
