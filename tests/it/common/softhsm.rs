//! SoftHSM2 tokens for the PKCS#11 tests: each [`SoftHsm`] is its own token directory and
//! config (`SOFTHSM2_CONF`) in a temporary directory, so tests never share state or touch the
//! machine's tokens. Keys and certificates are put on it with opensc's `pkcs11-tool` (imported
//! as sensitive, non-extractable objects, or generated on the token).

use super::{require_file, require_tool, run_ok, stdout_of};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian `softhsm2`'s module (a symlink to the multiarch path).
pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// A PIN no output should ever contain.
pub const PIN: &str = "pin-4711-never-shown";
const SO_PIN: &str = "so-pin-0815";

pub struct SoftHsm {
    _dir: tempfile::TempDir,
    pub conf: PathBuf,
    pub tokens: PathBuf,
    pub label: String,
}

impl SoftHsm {
    /// A fresh token `label` with user PIN [`PIN`].
    pub fn new(label: &str) -> SoftHsm {
        require_tool("softhsm2-util");
        require_tool("pkcs11-tool");
        require_file(MODULE, "softhsm2");
        let dir = super::scratch();
        let tokens = dir.path().join("tokens");
        std::fs::create_dir_all(&tokens).unwrap();
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .unwrap();
        let hsm = SoftHsm {
            _dir: dir,
            conf,
            tokens,
            label: label.to_string(),
        };
        run_ok(
            hsm.env(&mut Command::new("softhsm2-util"))
                .args(["--init-token", "--free", "--label", label])
                .args(["--pin", PIN, "--so-pin", SO_PIN]),
        );
        hsm
    }

    /// `cmd` with this token's `SOFTHSM2_CONF`.
    pub fn env<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        cmd.env("SOFTHSM2_CONF", &self.conf)
    }

    /// `pkcs11-tool` logged in to this token.
    pub fn tool(&self) -> Command {
        let mut c = Command::new("pkcs11-tool");
        self.env(&mut c)
            .args(["--module", MODULE, "--token-label", &self.label])
            .args(["--login", "--pin", PIN]);
        c
    }

    /// Import an unencrypted PEM private key as a sensitive, non-extractable object.
    pub fn import_key(&self, key: &Path, label: &str, id: &str, extra: &[&str]) {
        run_ok(
            self.tool()
                .arg("--write-object")
                .arg(key)
                .args(["--type", "privkey", "--sensitive", "--id", id])
                .args(["--label", label])
                .args(extra),
        );
    }

    /// Import a certificate (PEM or DER).
    pub fn import_cert(&self, cert: &Path, label: &str, id: &str) {
        run_ok(
            self.tool()
                .arg("--write-object")
                .arg(cert)
                .args(["--type", "cert", "--id", id, "--label", label]),
        );
    }

    /// Generate a key pair on the token (`key_type` as pkcs11-tool spells it: `rsa:3072`).
    pub fn generate(&self, key_type: &str, label: &str, id: &str) {
        run_ok(
            self.tool()
                .args(["--keypairgen", "--key-type", key_type, "--id", id])
                .args(["--label", label]),
        );
    }

    /// The public key with `id`, as PEM SubjectPublicKeyInfo in `out`.
    pub fn public_key_pem(&self, id: &str, out: &Path) {
        let der = out.with_extension("der");
        run_ok(
            self.tool()
                .args(["--read-object", "--type", "pubkey", "--id", id, "-o"])
                .arg(&der),
        );
        run_ok(
            Command::new("openssl")
                .args(["pkey", "-pubin", "-inform", "DER", "-in"])
                .arg(&der)
                .arg("-out")
                .arg(out),
        );
    }

    /// pkcs11-tool's listing of the private key `label` (Usage and Access lines).
    pub fn describe_private_key(&self, label: &str) -> String {
        let all = stdout_of(self.tool().args(["--list-objects", "--type", "privkey"]));
        let blocks: Vec<&str> = all.split("Private Key Object").collect();
        blocks
            .iter()
            .find(|b| {
                b.lines()
                    .any(|l| l.trim() == format!("label:      {label}"))
            })
            .unwrap_or_else(|| panic!("no private key {label} in {all}"))
            .to_string()
    }

    /// `pkcs11:token=…;object=LABEL?module-path=…&pin-value=…`.
    pub fn key_uri(&self, label: &str) -> String {
        format!(
            "pkcs11:token={};object={label};type=private?module-path={MODULE}&pin-value={PIN}",
            self.label
        )
    }

    /// The certificate object `label`, without a PIN (certificates are public objects).
    pub fn cert_uri(&self, label: &str) -> String {
        format!(
            "pkcs11:token={};object={label};type=cert?module-path={MODULE}",
            self.label
        )
    }

    /// Mark the user PIN locked in the token's stored flags. SoftHSM keeps no retry counter,
    /// but reports the flags it stores (CKA_OS_TOKENFLAGS, `0x8000534b`, a big-endian
    /// unsigned long in `token.object`), as a token that counts retries reports a lock.
    pub fn lock_user_pin(&self) {
        const CKF_USER_PIN_LOCKED: u64 = 0x0004_0000;
        let dir = std::fs::read_dir(&self.tokens)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.is_dir())
            .expect("token directory");
        let path = dir.join("token.object");
        let mut b = std::fs::read(&path).unwrap();
        // attribute type (u64), value kind 2 = unsigned long (u64), value (u64)
        let tag: Vec<u8> = [0x8000_534bu64.to_be_bytes(), 2u64.to_be_bytes()].concat();
        let at = b
            .windows(16)
            .position(|w| w == tag.as_slice())
            .expect("token flags attribute in token.object")
            + 16;
        let flags = u64::from_be_bytes(b[at..at + 8].try_into().unwrap());
        b[at..at + 8].copy_from_slice(&(flags | CKF_USER_PIN_LOCKED).to_be_bytes());
        std::fs::write(&path, b).unwrap();
    }
}
