//! Helpers shared by the integration tests: image builders, the composefs-oci reference, real
//! inputs (Debian kernel, systemd stub, a cpio initramfs, openssl keys), required system tools.
#![allow(dead_code)]

pub mod baseline;
pub mod bootc_image;
pub mod erofs_identity;
pub mod fault_proxy;
pub mod fedora_scale;
pub mod image_builder;
pub mod kernel_vm;
pub mod layout_input;
pub mod pe_verify;
pub mod realistic;
pub mod reference;
pub mod reference_094;
pub mod reference_check;
pub mod registry;
pub mod secureboot;
pub mod softhsm;
pub mod sync_repo;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub const STUB: &str = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";
pub const SYSTEMD_BOOT: &str = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi";

/// Fail (never skip) if a system tool the test needs is missing.
pub fn require_tool(name: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "required tool `{name}` is not installed (see .ci/run for the packages)"
    );
}

/// Fail if a required file is missing.
pub fn require_file(path: &str, package: &str) -> PathBuf {
    let p = PathBuf::from(path);
    assert!(
        p.is_file(),
        "{path} is missing (install the Debian package `{package}`)"
    );
    p
}

/// Run a command, assert success, return its output.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// stdout of a successful command as text.
pub fn stdout_of(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&run_ok(cmd).stdout).into_owned()
}

/// The bootseal binary built for these tests.
pub fn bootseal() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bootseal"))
}

/// A per-test scratch directory (removed when dropped).
pub fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("bootseal-test-")
        .tempdir()
        .expect("temp dir")
}

pub fn cache_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bootseal-test-cache");
    std::fs::create_dir_all(&d).expect("create cache dir");
    d
}

/// A real Debian kernel (vmlinuz) from the package `linux-image-amd64` depends on,
/// fetched with `apt-get download` once and cached in the target dir (never committed).
pub fn kernel() -> PathBuf {
    static K: OnceLock<PathBuf> = OnceLock::new();
    K.get_or_init(|| {
        let dir = cache_dir().join("kernel");
        if let Some(k) = find_vmlinuz(&dir) {
            return k;
        }
        require_tool("apt-get");
        require_tool("apt-cache");
        require_tool("dpkg-deb");
        let deps = stdout_of(Command::new("apt-cache").args(["depends", "linux-image-amd64"]));
        let pkg = deps
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Depends: "))
            .find(|p| p.starts_with("linux-image-"))
            .unwrap_or_else(|| panic!("no linux-image-* dependency in:\n{deps}"))
            .to_string();
        // Download and extract into a private directory, then rename into place, so test
        // binaries running in parallel never see a half-extracted kernel.
        let work = tempfile::Builder::new()
            .prefix("kernel-dl-")
            .tempdir_in(cache_dir())
            .expect("temp dir");
        run_ok(
            Command::new("apt-get")
                .args(["download", &pkg])
                .current_dir(work.path()),
        );
        let deb = std::fs::read_dir(work.path())
            .expect("read dir")
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "deb"))
            .expect("downloaded .deb");
        let root = work.path().join("root");
        extract_deb(&deb, &root);
        let _ = std::fs::rename(&root, &dir);
        find_vmlinuz(&dir).expect("vmlinuz in the kernel package")
    })
    .clone()
}

/// Extract a .deb into `root`; for kernel packages only ./boot (the modules are large).
fn extract_deb(deb: &Path, root: &Path) {
    std::fs::create_dir_all(root).unwrap();
    let is_kernel = deb
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("linux-image-"));
    if !is_kernel {
        run_ok(Command::new("dpkg-deb").arg("-x").arg(deb).arg(root));
        return;
    }
    require_tool("tar");
    let mut dpkg = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run dpkg-deb");
    let tar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(root)
        .arg("./boot")
        .stdin(dpkg.stdout.take().unwrap())
        .status()
        .expect("run tar");
    assert!(
        dpkg.wait().unwrap().success() && tar.success(),
        "extracting {} failed",
        deb.display()
    );
}

fn find_vmlinuz(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir.join("boot"))
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
}

/// Kernel release from the vmlinuz file name (`vmlinuz-6.1.0-56-amd64`).
pub fn kernel_release(k: &Path) -> String {
    k.file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .trim_start_matches("vmlinuz-")
        .to_string()
}

/// Build a small real initramfs (cpio newc via the `cpio` tool) with an /init script.
/// With `pad_to`, zero bytes are appended up to that size (cpio readers stop at TRAILER).
pub fn initramfs(dir: &Path, pad_to: Option<usize>) -> PathBuf {
    require_tool("cpio");
    let tree = dir.join("initramfs-tree");
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    std::fs::write(
        tree.join("init"),
        "#!/bin/sh\necho bootseal test initramfs\n",
    )
    .unwrap();
    std::fs::write(tree.join("etc/os-release"), "ID=bootseal-test\n").unwrap();
    // Fixed mtimes: the same initramfs (and so the same image digest) on every call.
    run_ok(
        Command::new("touch")
            .args(["-d", "@1700000000"])
            .arg(tree.join("init"))
            .arg(tree.join("etc/os-release"))
            .arg(tree.join("etc"))
            .arg(&tree),
    );
    let out = dir.join("initramfs.cpio");
    let file = std::fs::File::create(&out).unwrap();
    let mut child = Command::new("cpio")
        .args(["--quiet", "-o", "-H", "newc", "--reproducible"])
        .current_dir(&tree)
        .stdin(std::process::Stdio::piped())
        .stdout(file)
        .spawn()
        .expect("run cpio");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(b".\n./init\n./etc\n./etc/os-release\n")
            .unwrap();
    }
    assert!(child.wait().unwrap().success(), "cpio failed");
    if let Some(n) = pad_to {
        let mut b = std::fs::read(&out).unwrap();
        assert!(b.len() <= n);
        b.resize(n, 0);
        std::fs::write(&out, b).unwrap();
    }
    out
}

/// A self-signed RSA certificate and key made by openssl.
pub struct KeyPair {
    pub key: PathBuf,
    pub cert: PathBuf,
    pub cn: String,
}

/// `openssl req -x509 -newkey rsa:BITS -nodes` (PKCS#8 key).
pub fn keypair(dir: &Path, name: &str, bits: u32) -> KeyPair {
    require_tool("openssl");
    let key = dir.join(format!("{name}.key"));
    let cert = dir.join(format!("{name}.crt"));
    let cn = format!("bootseal test {name}");
    run_ok(
        Command::new("openssl")
            .args(["req", "-new", "-x509", "-sha256", "-days", "30", "-nodes"])
            .arg("-newkey")
            .arg(format!("rsa:{bits}"))
            .arg("-subj")
            .arg(format!("/CN={cn}/"))
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert),
    );
    KeyPair { key, cert, cn }
}

/// An RSA 2048 PCR-policy key pair as `ukify genkey` writes it: PKCS#1 private key
/// (`DIR/pcr.key`) and its SPKI public key (`DIR/pcr.pub.pem`).
pub fn pcr_keypair(dir: &Path) -> (PathBuf, PathBuf) {
    let key = dir.join("pcr.key");
    let public = dir.join("pcr.pub.pem");
    run_ok(
        Command::new("openssl")
            .args(["genrsa", "-traditional", "-out"])
            .arg(&key)
            .arg("2048"),
    );
    run_ok(
        Command::new("openssl")
            .args(["rsa", "-pubout", "-in"])
            .arg(&key)
            .arg("-out")
            .arg(&public),
    );
    (key, public)
}

/// `bootseal seal --from FROM --to TO --key --cert` (Debian 12's 252 stub needs no extra
/// flag); callers add further flags.
pub fn seal_cmd(from: &str, to: &str, keys: &KeyPair) -> Command {
    let mut c = bootseal();
    c.args(["seal", "--from", from, "--to", to])
        .arg("--key")
        .arg(&keys.key)
        .arg("--cert")
        .arg(&keys.cert);
    c
}

/// `bootseal sign --key KEY --cert CERT INPUT -o OUTPUT`.
pub fn sign_cmd(
    key: impl AsRef<std::ffi::OsStr>,
    cert: impl AsRef<std::ffi::OsStr>,
    input: impl AsRef<std::ffi::OsStr>,
    output: impl AsRef<std::ffi::OsStr>,
) -> Command {
    let mut c = bootseal();
    c.arg("sign")
        .arg("--key")
        .arg(key)
        .arg("--cert")
        .arg(cert)
        .arg(input)
        .arg("-o")
        .arg(output);
    c
}

/// `bootseal build-uki --linux --initrd --os-release --stub --cmdline -o`: the inputs every UKI
/// test names; callers add their own flags.
pub fn build_uki_cmd(
    linux: impl AsRef<std::ffi::OsStr>,
    initrd: impl AsRef<std::ffi::OsStr>,
    os_release: impl AsRef<std::ffi::OsStr>,
    stub: impl AsRef<std::ffi::OsStr>,
    cmdline: impl AsRef<std::ffi::OsStr>,
    output: impl AsRef<std::ffi::OsStr>,
) -> Command {
    let mut c = bootseal();
    c.arg("build-uki")
        .arg("--linux")
        .arg(linux)
        .arg("--initrd")
        .arg(initrd)
        .arg("--os-release")
        .arg(os_release)
        .arg("--stub")
        .arg(stub)
        .arg("--cmdline")
        .arg(cmdline)
        .arg("-o")
        .arg(output);
    c
}

/// Assemble an unsigned UKI with bootseal from the Debian stub and kernel (Debian 12's 252
/// stub: the merged `.sbat` is moved after the stub's sections, uki.md pitfall P1).
pub fn build_uki(dir: &Path, cmdline: &str, out_name: &str) -> PathBuf {
    let (out, output) = build_uki_output(dir, cmdline, out_name);
    assert!(
        output.status.success(),
        "build-uki failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    out
}

/// [`build_uki`] without the success check: the output path and what the run printed.
pub fn build_uki_output(dir: &Path, cmdline: &str, out_name: &str) -> (PathBuf, Output) {
    let stub = require_file(STUB, "systemd-boot-efi");
    let k = kernel();
    let initrd = initramfs(dir, None);
    let osrel = dir.join("os-release");
    std::fs::write(
        &osrel,
        "NAME=\"Bootseal Test\"\nPRETTY_NAME=\"Bootseal Test 1\"\nID=bootseal-test\n",
    )
    .unwrap();
    let out = dir.join(out_name);
    let output = build_uki_cmd(&k, &initrd, &osrel, &stub, cmdline, &out)
        .output()
        .unwrap();
    (out, output)
}

/// `pesign -h` (Authenticode SHA-256 digest) of a file, lowercase hex.
pub fn pesign_hash(file: &Path) -> String {
    require_tool("pesign");
    let out = stdout_of(Command::new("pesign").arg("-h").arg("-i").arg(file));
    out.split_whitespace()
        .last()
        .unwrap_or_else(|| panic!("no hash in pesign output {out:?}"))
        .to_lowercase()
}

/// Read a section's raw contents with objcopy (an independent PE reader).
pub fn objcopy_section(file: &Path, section: &str, dir: &Path) -> Vec<u8> {
    require_tool("objcopy");
    let out = dir.join(format!("section{}.bin", section.replace('.', "_")));
    run_ok(
        Command::new("objcopy")
            .arg("-O")
            .arg("binary")
            .arg(format!("--only-section={section}"))
            .arg(file)
            .arg(&out),
    );
    std::fs::read(out).unwrap()
}

/// Real `ukify` and systemd-stub 257 from Debian trixie (packages `systemd-ukify` and
/// `systemd-boot-efi`), fetched with `apt-get download` through a private apt
/// configuration (the system's sources stay untouched), plus a venv with PyPI `pefile`.
/// Cached in the target dir.
pub struct Ukify {
    /// Python interpreter of the venv.
    pub python: PathBuf,
    /// The ukify script.
    pub script: PathBuf,
    /// linuxx64.efi.stub 257.
    pub stub: PathBuf,
}

impl Ukify {
    /// `ukify build ARGS…`
    pub fn build(&self) -> Command {
        let mut c = Command::new(&self.python);
        c.arg(&self.script).arg("build");
        c
    }
}

pub fn ukify() -> Ukify {
    static U: OnceLock<Ukify> = OnceLock::new();
    U.get_or_init(|| {
        require_tool("apt-get");
        require_tool("dpkg-deb");
        require_tool("python3");
        let base = cache_dir().join("trixie");
        let root = base.join("root");
        let u = Ukify {
            python: base.join("venv/bin/python"),
            script: root.join("usr/bin/ukify"),
            stub: root.join("usr/lib/systemd/boot/efi/linuxx64.efi.stub"),
        };
        if u.python.is_file() && u.script.is_file() && u.stub.is_file() {
            return u;
        }
        trixie_download(&["systemd-ukify", "systemd-boot-efi"], &root);
        let venv = base.join("venv");
        run_ok(Command::new("python3").arg("-m").arg("venv").arg(&venv));
        run_ok(Command::new(venv.join("bin/pip")).args(["install", "-q", "pefile==2024.8.26"]));
        assert!(
            u.script.is_file() && u.stub.is_file(),
            "trixie packages lack ukify or the stub"
        );
        u
    })
    .clone()
}

impl Clone for Ukify {
    fn clone(&self) -> Self {
        Ukify {
            python: self.python.clone(),
            script: self.script.clone(),
            stub: self.stub.clone(),
        }
    }
}

/// `apt-get`/`apt-cache` with a private configuration for Debian trixie (amd64 + arm64),
/// leaving the system's sources untouched.
fn trixie_apt(tool: &str) -> Command {
    let apt = cache_dir().join("trixie/apt");
    let sources = apt.join("sources.list");
    let mut c = Command::new(tool);
    c.arg("-o")
        .arg(format!("Dir::Etc::SourceList={}", sources.display()))
        .arg("-o")
        .arg("Dir::Etc::SourceParts=/nonexistent")
        .arg("-o")
        .arg(format!("Dir::State::Lists={}", apt.join("lists").display()))
        .arg("-o")
        .arg(format!("Dir::Cache={}", apt.join("cache").display()))
        .arg("-o")
        .arg("APT::Architectures::=arm64");
    c
}

/// The Debian archive this machine's apt already uses (the first `URIs:`/`deb` entry ending in
/// `/debian`), so tests reach trixie through the same mirror as everything else.
fn debian_mirror() -> String {
    let mut texts = Vec::new();
    for dir in ["/etc/apt/sources.list.d"] {
        if let Ok(entries) = std::fs::read_dir(dir) {
            let mut paths: Vec<PathBuf> =
                entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            paths.sort();
            texts.extend(paths.iter().filter_map(|p| std::fs::read_to_string(p).ok()));
        }
    }
    texts.extend(std::fs::read_to_string("/etc/apt/sources.list").ok());
    texts
        .iter()
        .flat_map(|t| t.lines())
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.split_whitespace())
        .find(|w| {
            (w.starts_with("http://") || w.starts_with("https://"))
                && w.trim_end_matches('/').ends_with("/debian")
        })
        .map(|w| w.trim_end_matches('/').to_owned())
        .expect("no Debian archive in the apt sources")
}

/// Fetch trixie's package lists once per test binary.
fn trixie_update() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let apt = cache_dir().join("trixie/apt");
        std::fs::create_dir_all(apt.join("lists/partial")).unwrap();
        std::fs::create_dir_all(apt.join("cache/archives/partial")).unwrap();
        std::fs::write(
            apt.join("sources.list"),
            format!(
                "deb [arch=amd64,arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {} trixie main\n",
                debian_mirror()
            ),
        )
        .unwrap();
        run_ok(trixie_apt("apt-get").args(["-q", "update"]));
    });
}

/// Download Debian trixie packages (`name` or `name:arch`) and extract them into `root`.
fn trixie_download(packages: &[&str], root: &Path) {
    trixie_update();
    std::fs::create_dir_all(root).unwrap();
    let dl = tempfile::Builder::new()
        .prefix("dl-")
        .tempdir_in(cache_dir())
        .unwrap();
    run_ok(
        trixie_apt("apt-get")
            .args(["-q", "download"])
            .args(packages)
            .current_dir(dl.path()),
    );
    for entry in std::fs::read_dir(dl.path()).unwrap().filter_map(|e| e.ok()) {
        let p = entry.path();
        if p.extension().is_some_and(|x| x == "deb") {
            extract_deb(&p, root);
        }
    }
}

/// arm64 inputs from Debian trixie: systemd-stub 257 `linuxaa64.efi.stub` and the kernel
/// `linux-image-arm64` depends on (an uncompressed EFI-stub PE `Image`, ~37 MB).
pub fn arm64_inputs() -> (PathBuf, PathBuf) {
    static A: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    A.get_or_init(|| {
        let root = cache_dir().join("trixie-arm64");
        let stub_rel = "usr/lib/systemd/boot/efi/linuxaa64.efi.stub";
        if let (true, Some(k)) = (root.join(stub_rel).is_file(), find_vmlinuz(&root)) {
            return (root.join(stub_rel), k);
        }
        trixie_update();
        let deps = stdout_of(trixie_apt("apt-cache").args(["depends", "linux-image-arm64:arm64"]));
        let kpkg = deps
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Depends: "))
            .find(|p| p.starts_with("linux-image-"))
            .unwrap_or_else(|| panic!("no linux-image-* dependency in:\n{deps}"))
            .to_string();
        let work = tempfile::Builder::new()
            .prefix("arm64-")
            .tempdir_in(cache_dir())
            .unwrap();
        trixie_download(&["systemd-boot-efi:arm64", &kpkg], work.path());
        let _ = std::fs::rename(work.path(), &root);
        (
            root.join(stub_rel),
            find_vmlinuz(&root).expect("arm64 vmlinuz in the kernel package"),
        )
    })
    .clone()
}

/// A directory holding a runnable `systemd-measure` 257 from Debian trixie (for
/// `ukify --tools DIR` and direct calls). Trixie's binaries need a newer glibc and
/// OpenSSL than bookworm's, so the wrapper starts them with trixie's own dynamic loader
/// and libraries (libtss2 is dlopen'ed for the PolicyPCR digest).
pub fn systemd_measure_tools() -> PathBuf {
    static T: OnceLock<PathBuf> = OnceLock::new();
    T.get_or_init(|| {
        let base = cache_dir().join("trixie-measure");
        let tools = base.join("tools");
        let wrapper = tools.join("systemd-measure");
        if wrapper.is_file() {
            return tools;
        }
        let root = base.join("root");
        trixie_download(
            &[
                "systemd",
                "libsystemd-shared",
                "libc6",
                "libssl3t64",
                "libacl1",
                "libblkid1",
                "libcap2",
                "libcrypt1",
                "libmount1",
                "libpam0g",
                "libseccomp2",
                "libselinux1",
                "libpcre2-8-0",
                "libaudit1",
                "libcap-ng0",
                "libzstd1",
                "libtss2-esys-3.0.2-0t64",
                "libtss2-mu-4.0.1-0t64",
                "libtss2-rc0t64",
                "libtss2-sys1t64",
                "libtss2-tctildr0t64",
            ],
            &root,
        );
        let lib = root.join("usr/lib/x86_64-linux-gnu");
        std::fs::create_dir_all(&tools).unwrap();
        let script = format!(
            "#!/bin/sh\nexec {ld} --library-path {lib}:{lib}/systemd {bin} \"$@\"\n",
            ld = lib.join("ld-linux-x86-64.so.2").display(),
            lib = lib.display(),
            bin = root.join("usr/lib/systemd/systemd-measure").display(),
        );
        let tmp = tools.join("systemd-measure.tmp");
        std::fs::write(&tmp, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
        let v = stdout_of(Command::new(&tmp).arg("--version"));
        assert!(
            v.starts_with("systemd 257"),
            "systemd-measure --version: {v}"
        );
        std::fs::rename(&tmp, &wrapper).unwrap();
        tools
    })
    .clone()
}

/// Our digest of an OCI layout image.
pub fn our_digest(
    image: &image_builder::BuiltImage,
    opts: &bootseal::digest::DigestOptions,
) -> Result<bootseal::digest::DigestReport, bootseal::digest::DigestError> {
    let layers = layout_input::layer_inputs(&image.dir, &image.tag);
    bootseal::digest::compute(&image.oci_ref(), layers, opts)
}
