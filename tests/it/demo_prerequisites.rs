//! README's first command checks its prerequisites before it builds anything: with a PATH that
//! hides tools, `demo/seal-demo.sh` names them, prints the one apt-get line to run and exits 2
//! within seconds (non-root and `--check`); as root it runs `apt-get update` and then installs
//! exactly the missing packages.

use crate::common;

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/demo/seal-demo.sh");

/// A directory of links to every program on this PATH except `hidden`, plus `extra` scripts.
fn path_without(dir: &Path, hidden: &[&str], extra: &[(&str, &str)]) -> std::path::PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let path = std::env::var_os("PATH").unwrap();
    for d in std::env::split_paths(&path) {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let target = bin.join(&name);
            if hidden.iter().any(|h| name == **h)
                || extra.iter().any(|(n, _)| name == **n)
                || target.symlink_metadata().is_ok()
            {
                continue;
            }
            symlink(e.path(), target).unwrap();
        }
    }
    for (name, script) in extra {
        let p = bin.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{script}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin
}

/// Runs the demo with `args` on `path`, checking it returns within seconds.
fn demo(path: &Path, args: &[&str], bootseal: bool) -> Output {
    let mut c = Command::new(path.join("bash"));
    c.arg(DEMO)
        .args(args)
        .env("PATH", path)
        .env("DEMO_WORK", path.parent().unwrap().join("work"));
    if bootseal {
        c.env("BOOTSEAL", env!("CARGO_BIN_EXE_bootseal"));
    } else {
        c.env_remove("BOOTSEAL");
    }
    let start = Instant::now();
    let out = c.output().unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "the check took {:?}",
        start.elapsed()
    );
    out
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn all_prerequisites_present_passes_the_check() {
    let tmp = common::scratch();
    let path = path_without(tmp.path(), &[], &[]);
    let out = demo(&path, &["--boot", "--check"], true);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("all prerequisites are installed"),
        "{stdout}"
    );
}

#[test]
fn hidden_tool_gives_the_apt_get_line_and_exit_2() {
    let tmp = common::scratch();
    let path = path_without(&tmp.path().join("a"), &["cpio"], &[]);
    // Without --check too: the non-root path (faked `id`) must fail before building anything.
    let user = path_without(&tmp.path().join("b"), &["cpio"], &[("id", "echo 1000")]);
    for (path, args) in [
        (&path, &["--boot", "--check"][..]),
        (&user, &["--boot"][..]),
    ] {
        let out = demo(path, args, true);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
        assert_eq!(
            stdout,
            "apt-get update && apt-get install -y --no-install-recommends cpio\n"
        );
        assert!(
            stderr.contains("seal-demo: missing: cpio (Debian package cpio)"),
            "{stderr}"
        );
        assert!(!stderr.contains("== "), "nothing may start: {stderr}");
    }
}

#[test]
fn boot_tools_are_needed_only_with_boot_and_each_package_once() {
    let tmp = common::scratch();
    let path = path_without(
        tmp.path(),
        &["cpio", "qemu-system-x86_64", "mmd", "mcopy", "skopeo"],
        &[],
    );
    let out = demo(&path, &["--boot", "--check"], true);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out).0,
        "apt-get update && apt-get install -y --no-install-recommends \
         skopeo cpio qemu-system-x86 mtools\n"
    );
    let out = demo(&path, &["--check"], true);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out).0,
        "apt-get update && apt-get install -y --no-install-recommends skopeo cpio\n"
    );
}

#[test]
fn without_bootseal_binary_the_build_tools_are_checked() {
    let tmp = common::scratch();
    let path = path_without(&tmp.path().join("a"), &["cargo", "pkg-config"], &[]);
    let out = demo(&path, &["--check"], false);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert_eq!(
        stdout,
        "apt-get update && apt-get install -y --no-install-recommends pkg-config\n"
    );
    let with_pkg_config = path_without(&tmp.path().join("b"), &["cargo"], &[]);
    let out = demo(&with_pkg_config, &["--check"], false);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("install Rust >= 1.88"), "{stderr}");
}

#[test]
fn as_root_it_updates_then_installs_exactly_the_missing_packages() {
    let tmp = common::scratch();
    let log = tmp.path().join("apt.log");
    // A recording apt-get that installs nothing: the demo must re-check and stop with 1.
    let apt = format!("echo \"$@\" >> {}", log.display());
    let path = path_without(
        tmp.path(),
        &["cpio", "mcopy"],
        &[("id", "echo 0"), ("apt-get", &apt)],
    );
    let out = demo(&path, &["--boot"], true);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "update -q\ninstall -y -q --no-install-recommends cpio mtools\n"
    );
    assert!(
        stderr.contains("still missing after apt-get install: cpio (Debian package cpio)"),
        "{stderr}"
    );
    assert!(!stdout.contains("== building"), "{stdout}");
}

#[test]
fn every_package_named_exists_and_installs_in_simulation() {
    // Hide every tool the demo checks (and libssl-dev via a dpkg-query that knows nothing), then
    // let apt-get simulate installing the line it prints: a misspelt package fails here.
    let tmp = common::scratch();
    let tools = [
        "cc",
        "pkg-config",
        "umoci",
        "skopeo",
        "docker-registry",
        "curl",
        "openssl",
        "cpio",
        "gzip",
        "qemu-system-x86_64",
        "mkfs.vfat",
        "mmd",
        "mcopy",
    ];
    let path = path_without(tmp.path(), &tools, &[("dpkg-query", "exit 1")]);
    let out = demo(&path, &["--boot", "--check"], false);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    let packages: Vec<&str> = stdout
        .trim()
        .strip_prefix("apt-get update && apt-get install -y --no-install-recommends ")
        .unwrap_or_else(|| panic!("{stdout}"))
        .split(' ')
        .collect();
    assert_eq!(
        packages,
        [
            "build-essential",
            "pkg-config",
            "libssl-dev",
            "umoci",
            "skopeo",
            "docker-registry",
            "curl",
            "openssl",
            "cpio",
            "gzip",
            "qemu-system-x86",
            "dosfstools",
            "mtools"
        ]
    );
    common::run_ok(
        Command::new("apt-get")
            .args(["install", "-s", "-q", "--no-install-recommends"])
            .args(&packages)
            // the OVMF files are checked by path, which a PATH cannot hide
            .arg("ovmf"),
    );
}

#[test]
fn a_bootseal_that_is_not_there_is_named() {
    let out = Command::new("bash")
        .args([DEMO, "--check"])
        .env("BOOTSEAL", "/nonexistent/bootseal")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out)
            .1
            .contains("BOOTSEAL=/nonexistent/bootseal is not an executable file")
    );
}
