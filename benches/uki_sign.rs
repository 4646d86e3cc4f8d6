//! Benchmark: build-uki + sign for a 10 MiB kernel + 40 MiB initramfs, against `sbsign`
//! signing the same unsigned UKI, measured in the same run; and `sign` with the key on a
//! SoftHSM2 token against `sign` with the key file. Prints medians and ratios.
//!
//! The kernel is the real Debian kernel (test cache) with pseudo-random bytes appended to
//! reach 10 MiB (trailing data after the last PE section is allowed and is embedded and
//! hashed like the rest); the initramfs is a real cpio holding a 40 MiB pseudo-random file.

#[path = "../tests/it/common/mod.rs"]
mod common;

use bootseal::authenticode;
use bootseal::signer::keys;
use bootseal::signer::{CertifiedSigner, FileKey};
use bootseal::uki;
use common::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const RUNS: usize = 5;
const PAIR_RUNS: usize = 15;

fn pseudo_random(n: usize, mut seed: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(n + 8);
    while v.len() < n {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.extend_from_slice(&seed.to_le_bytes());
    }
    v.truncate(n);
    v
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time<F: FnMut()>(mut f: F) -> Duration {
    f(); // warm-up (page cache)
    median(
        (0..RUNS)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

/// Medians of `a` and `b` run alternately (PAIR_RUNS each), so a change in machine load
/// during the run affects both alike.
fn time_pair<F: FnMut(), G: FnMut()>(mut a: F, mut b: G) -> (Duration, Duration) {
    a();
    b();
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for _ in 0..PAIR_RUNS {
        let t = Instant::now();
        a();
        ta.push(t.elapsed());
        let t = Instant::now();
        b();
        tb.push(t.elapsed());
    }
    (median(ta), median(tb))
}

fn build_and_sign_in_process(dir: &Path, kp: &KeyPair, linux: &Path, initrd: &Path) {
    let stub = std::fs::read(STUB).unwrap();
    let linux = std::fs::read(linux).unwrap();
    let initrd = std::fs::read(initrd).unwrap();
    let osrel = b"ID=bench\n";
    let inputs = uki::UkiInputs {
        stub: &stub,
        linux: &linux,
        initrd: Some(&initrd),
        os_release: osrel,
        cmdline: Some(b"console=ttyS0 composefs=abc rw"),
        allow_section_overlap: true,
        ..Default::default()
    };
    let image = uki::build(&inputs).unwrap();
    let key = FileKey::load(&kp.key, None).unwrap();
    let cert = keys::load_certificate(&std::fs::read(&kp.cert).unwrap()).unwrap();
    let signer = CertifiedSigner::new(Box::new(key), cert).unwrap();
    let signed = authenticode::sign_owned(image, &signer, false).unwrap();
    std::fs::write(dir.join("lib-signed.efi"), signed).unwrap();
}

fn main() {
    require_tool("sbsign");
    let d = scratch();
    let dir = d.path();
    let kp = keypair(dir, "bench", 2048);

    let mut kernel_bytes = std::fs::read(kernel()).unwrap();
    let target = 10 << 20;
    assert!(kernel_bytes.len() <= target);
    kernel_bytes.extend(pseudo_random(target - kernel_bytes.len(), 1));
    let linux = dir.join("vmlinuz-10M");
    std::fs::write(&linux, &kernel_bytes).unwrap();

    let tree = dir.join("initramfs-tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("payload"), pseudo_random(40 << 20, 2)).unwrap();
    let initrd = dir.join("initramfs-40M.cpio");
    let f = std::fs::File::create(&initrd).unwrap();
    let mut child = Command::new("cpio")
        .args(["--quiet", "-o", "-H", "newc"])
        .current_dir(&tree)
        .stdin(std::process::Stdio::piped())
        .stdout(f)
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"payload\n").unwrap();
    }
    assert!(child.wait().unwrap().success());
    let osrel = dir.join("os-release");
    std::fs::write(&osrel, "ID=bench\n").unwrap();
    let unsigned = dir.join("uki.efi");

    let cli_build = || {
        run_ok(
            build_uki_cmd(
                &linux,
                &initrd,
                &osrel,
                STUB,
                "console=ttyS0 composefs=abc rw",
                &unsigned,
            )
            .arg("--allow-section-overlap"),
        );
    };
    cli_build();
    let uki_size = std::fs::metadata(&unsigned).unwrap().len();

    let t_lib = time(|| build_and_sign_in_process(dir, &kp, &linux, &initrd));
    let t_cli = time(|| {
        cli_build();
        run_ok(&mut sign_cmd(
            &kp.key,
            &kp.cert,
            &unsigned,
            dir.join("cli-signed.efi"),
        ));
    });
    let t_sign_only = time(|| {
        run_ok(&mut sign_cmd(
            &kp.key,
            &kp.cert,
            &unsigned,
            dir.join("cli-signed.efi"),
        ));
    });
    // The same key on a SoftHSM2 token: module load, login and a CKM_RSA_PKCS signature
    // replace reading the key file; the 50 MiB are hashed here either way.
    let hsm = common::softhsm::SoftHsm::new("bench");
    hsm.import_key(&kp.key, "bench", "01", &[]);
    let (t_file_pair, t_token) = time_pair(
        || {
            run_ok(&mut sign_cmd(
                &kp.key,
                &kp.cert,
                &unsigned,
                dir.join("cli-signed.efi"),
            ));
        },
        || {
            run_ok(
                hsm.env(&mut bootseal())
                    .arg("sign")
                    .arg("--key")
                    .arg(hsm.key_uri("bench"))
                    .arg("--cert")
                    .arg(&kp.cert)
                    .arg(&unsigned)
                    .arg("-o")
                    .arg(dir.join("token-signed.efi")),
            );
        },
    );
    assert_eq!(
        std::fs::read(dir.join("token-signed.efi")).unwrap(),
        std::fs::read(dir.join("cli-signed.efi")).unwrap(),
        "token and key file sign identically"
    );
    let t_sbsign = time(|| {
        run_ok(
            Command::new("sbsign")
                .arg("--key")
                .arg(&kp.key)
                .arg("--cert")
                .arg(&kp.cert)
                .arg(&unsigned)
                .arg("--output")
                .arg(dir.join("sbsign.efi")),
        );
    });

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "uki_sign: kernel 10 MiB + initramfs 40 MiB -> UKI {:.1} MiB, median of {RUNS} runs",
        uki_size as f64 / (1 << 20) as f64
    );
    println!(
        "  bootseal library build+sign (in-process): {:8.1} ms",
        ms(t_lib)
    );
    println!(
        "  bootseal CLI build-uki + sign:            {:8.1} ms",
        ms(t_cli)
    );
    println!(
        "  bootseal CLI sign only:                   {:8.1} ms",
        ms(t_sign_only)
    );
    println!(
        "  CLI sign, key file (alternating, {PAIR_RUNS}x):  {:8.1} ms",
        ms(t_file_pair)
    );
    println!(
        "  CLI sign, key on SoftHSM2 token (same):   {:8.1} ms",
        ms(t_token)
    );
    println!(
        "  sbsign (sign only, same UKI):             {:8.1} ms",
        ms(t_sbsign)
    );
    println!(
        "  ratio library build+sign / sbsign:        {:8.2}",
        ms(t_lib) / ms(t_sbsign)
    );
    println!(
        "  ratio CLI build-uki+sign / sbsign:        {:8.2}",
        ms(t_cli) / ms(t_sbsign)
    );
    println!(
        "  ratio CLI sign / sbsign:                  {:8.2}",
        ms(t_sign_only) / ms(t_sbsign)
    );
    println!(
        "  ratio token sign / key-file sign:         {:8.2}  (target <= 1.2)",
        ms(t_token) / ms(t_file_pair)
    );
}
