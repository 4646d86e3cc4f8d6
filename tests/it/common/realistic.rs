//! A realistic bootc-like image (> 300 MB, >= 20 layers) built from Debian packages at test time.
//!
//! The kernel is the versioned `linux-image-*-amd64` package `linux-image-amd64` depends on,
//! fetched with `apt-get download` (never committed); its modules, a real initramfs made with
//! `cpio` (busybox, an init script, some of the kernel's modules, zstd-compressed) and the
//! contents of other Debian packages are laid out merged-/usr style and spread over layers of
//! mixed compression. The result is cached under `CARGO_TARGET_TMPDIR` and rebuilt only when
//! missing.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use super::image_builder::{BuiltImage, Compression, E, LayerSpec, OciImage, TarLayer};

/// Debian packages whose contents fill the image besides the kernel.
const PACKAGES: &[&str] = &[
    "libc6",
    "bash",
    "coreutils",
    "util-linux",
    "systemd",
    "libsystemd-shared",
    "perl-base",
    "python3.11-minimal",
    "libpython3.11-minimal",
    "libpython3.11-stdlib",
    "openssl",
    "libssl3",
    "busybox",
];

const TAG: &str = "realistic";
/// Start a new layer once the current one holds this many uncompressed bytes.
const LAYER_SIZE: usize = 24 * 1024 * 1024;

pub struct Realistic {
    pub image: BuiltImage,
    pub kver: String,
    /// The kernel's vmlinuz as shipped in the Debian package.
    pub vmlinuz: PathBuf,
    pub initramfs: PathBuf,
}

static BUILD: Mutex<()> = Mutex::new(());

fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("bootseal-realistic")
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The versioned kernel package behind the `linux-image-amd64` metapackage.
fn kernel_package() -> String {
    let out = String::from_utf8(run(
        Command::new("apt-cache").args(["depends", "linux-image-amd64"])
    ))
    .unwrap();
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|p| p.starts_with("linux-image-") && p.ends_with("-amd64"))
        .unwrap_or_else(|| panic!("linux-image-amd64 depends on no linux-image-*-amd64:\n{out}"))
        .to_string()
}

/// Downloads `pkg` into `debs` unless a `.deb` of it is already there.
fn deb(debs: &Path, pkg: &str) -> PathBuf {
    let find = || {
        fs::read_dir(debs)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&format!("{pkg}_"))
                    && p.extension().is_some_and(|x| x == "deb")
            })
    };
    if let Some(p) = find() {
        return p;
    }
    run(Command::new("apt-get")
        .args(["download", pkg])
        .current_dir(debs));
    find().unwrap_or_else(|| panic!("apt-get download {pkg} produced no .deb"))
}

/// Maps a Debian package path to the merged-/usr bootc layout.
fn map_path(path: &str, kver: &str) -> Option<String> {
    let p = path.trim_start_matches("./").trim_end_matches('/');
    if p.is_empty() {
        return None;
    }
    for top in ["bin", "sbin", "lib", "lib64"] {
        if p == top {
            return Some(format!("usr/{top}"));
        }
        if let Some(rest) = p.strip_prefix(&format!("{top}/")) {
            return Some(format!("usr/{top}/{rest}"));
        }
    }
    if p == "boot" {
        return None;
    }
    if let Some(name) = p.strip_prefix("boot/") {
        let base = name.strip_suffix(&format!("-{kver}")).unwrap_or(name);
        return Some(format!("usr/lib/modules/{kver}/{base}"));
    }
    Some(p.to_string())
}

/// Writes layers of bounded size as entries stream in.
struct LayerSplitter {
    current: tar::Builder<Vec<u8>>,
    layers: Vec<LayerSpec>,
}

impl LayerSplitter {
    fn new() -> Self {
        Self {
            current: tar::Builder::new(Vec::new()),
            layers: Vec::new(),
        }
    }

    fn cut(&mut self) {
        let b = std::mem::replace(&mut self.current, tar::Builder::new(Vec::new()));
        let tar = b.into_inner().unwrap();
        if tar.len() > 1024 {
            let compression = match self.layers.len() % 4 {
                0 | 2 => Compression::Gzip,
                1 => Compression::Zstd,
                _ => Compression::None,
            };
            let mut t = tar;
            // into_inner already wrote the end-of-archive blocks
            t.shrink_to_fit();
            self.layers.push(LayerSpec {
                tar: t,
                compression,
                media_type: None,
            });
        }
    }

    fn maybe_cut(&mut self) {
        if self.current.get_ref().len() >= LAYER_SIZE {
            self.cut();
        }
    }

    /// Copies one entry of a Debian data tarball.
    fn copy(&mut self, header: &tar::Header, path: &str, link: Option<String>, data: &[u8]) {
        let mut h = header.clone();
        match link {
            Some(target) => self.current.append_link(&mut h, path, target).unwrap(),
            None => self.current.append_data(&mut h, path, data).unwrap(),
        }
    }

    fn add(&mut self, e: E) {
        let mut t = TarLayer::new();
        t.add(e);
        let bytes = t.finish();
        // Drop the two end-of-archive blocks of the single-entry archive.
        let body = &bytes[..bytes.len() - 1024];
        self.current.get_mut().extend_from_slice(body);
    }
}

/// Streams a package's data tarball into the splitter. `./boot/*` entries are mapped into
/// `/usr/lib/modules/KVER/` and written last, once that directory exists.
fn copy_package(split: &mut LayerSplitter, deb: &Path, kver: &str) {
    let mut child = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdout(Stdio::piped())
        .spawn()
        .expect("dpkg-deb");
    let mut deferred = Vec::new();
    {
        let mut archive = tar::Archive::new(child.stdout.take().unwrap());
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let Some(path) = map_path(&raw, kver) else {
                continue;
            };
            let header = entry.header().clone();
            let kind = header.entry_type();
            let link = match kind {
                tar::EntryType::Link => {
                    let t = String::from_utf8_lossy(&entry.link_name_bytes().unwrap()).into_owned();
                    Some(map_path(&t, kver).unwrap())
                }
                tar::EntryType::Symlink => {
                    Some(String::from_utf8_lossy(&entry.link_name_bytes().unwrap()).into_owned())
                }
                _ => None,
            };
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            if raw.starts_with("./boot/") {
                deferred.push((header, path, link, data));
                continue;
            }
            split.copy(&header, &path, link, &data);
            split.maybe_cut();
        }
    }
    assert!(
        child.wait().unwrap().success(),
        "dpkg-deb --fsys-tarfile {}",
        deb.display()
    );
    for (header, path, link, data) in deferred {
        split.copy(&header, &path, link, &data);
    }
}

fn file_contexts() -> String {
    let mut s = String::from(
        "# generated for bootseal tests\n/.*\tsystem_u:object_r:default_t:s0\n/\t-d\tsystem_u:object_r:root_t:s0\n",
    );
    for (re, t) in [
        ("/usr(/.*)?", "usr_t"),
        ("/usr/bin(/.*)?", "bin_t"),
        ("/usr/sbin(/.*)?", "bin_t"),
        ("/usr/lib(/.*)?", "lib_t"),
        ("/usr/lib64(/.*)?", "lib_t"),
        ("/usr/lib/modules(/.*)?", "modules_object_t"),
        ("/usr/lib/systemd/systemd", "init_exec_t"),
        ("/usr/bin/bash", "shell_exec_t"),
        ("/usr/share(/.*)?", "usr_t"),
        ("/etc(/.*)?", "etc_t"),
        ("/etc/selinux(/.*)?", "selinux_config_t"),
        ("/var(/.*)?", "var_t"),
        ("/var/lib(/.*)?", "var_lib_t"),
        ("/tmp(/.*)?", "tmp_t"),
        ("/boot(/.*)?", "boot_t"),
        ("/opt(/.*)?", "usr_t"),
        ("/usr/lib/python3\\.11(/.*)?", "lib_t"),
        ("/usr/lib/x86_64-linux-gnu/.*\\.so(\\.[^/]*)*", "lib_t"),
    ] {
        s.push_str(&format!("{re}\tsystem_u:object_r:{t}:s0\n"));
    }
    s
}

fn base_layer(kver: &str) -> Vec<u8> {
    let os_release = "NAME=\"bootseal test OS\"\nID=bootseal-test\nVERSION_ID=1\nPRETTY_NAME=\"bootseal test OS 1\"\nHOME_URL=\"https://example.invalid/\"\n";
    TarLayer::with([
        E::dir("usr").mtime(1_700_000_100),
        E::dir("usr/bin"),
        E::dir("usr/sbin"),
        E::dir("usr/lib"),
        E::dir("usr/lib64"),
        E::dir("usr/lib/modules"),
        E::dir(&format!("usr/lib/modules/{kver}")),
        E::dir("usr/lib/bootc"),
        E::dir("usr/lib/bootc/kargs.d"),
        E::file(
            "usr/lib/bootc/kargs.d/10-console.toml",
            "kargs = [\"console=ttyS0,115200n8\"]\nmatch-architectures = [\"x86_64\"]\n",
        ),
        E::file("usr/lib/os-release", os_release),
        E::symlink("bin", "usr/bin"),
        E::symlink("sbin", "usr/sbin"),
        E::symlink("lib", "usr/lib"),
        E::symlink("lib64", "usr/lib64"),
        E::dir("etc"),
        E::symlink("etc/os-release", "../usr/lib/os-release"),
        E::dir("etc/selinux"),
        E::file(
            "etc/selinux/config",
            "SELINUX=enforcing\nSELINUXTYPE=targeted\n",
        ),
        E::dir("etc/selinux/targeted"),
        E::dir("etc/selinux/targeted/contexts"),
        E::dir("etc/selinux/targeted/contexts/files"),
        E::file(
            "etc/selinux/targeted/contexts/files/file_contexts",
            file_contexts(),
        ),
        E::file(
            "etc/selinux/targeted/contexts/files/file_contexts.subs_dist",
            "/sysroot/ostree/deploy/*/var /var\n/var/roothome /root\n",
        ),
        E::dir("boot"),
        E::dir("sysroot"),
        E::dir("run"),
        E::dir("var"),
        E::dir("var/lib"),
        E::dir("var/roothome").mode(0o700),
        E::symlink("root", "var/roothome"),
        E::dir("tmp").mode(0o1777),
        E::dir("opt"),
        E::dir("proc").mode(0o555),
        E::dir("sys").mode(0o555),
        E::dir("dev"),
    ])
}

/// Builds the initramfs with cpio: busybox, an init script and the kernel's fs and virtio modules.
fn build_initramfs(work: &Path, busybox_deb: &Path, kernel_deb: &Path, kver: &str) -> PathBuf {
    let stage = work.join("initramfs-root");
    let _ = fs::remove_dir_all(&stage);
    fs::create_dir_all(&stage).unwrap();
    let unpack = work.join("unpack");
    let _ = fs::remove_dir_all(&unpack);
    fs::create_dir_all(&unpack).unwrap();
    run(Command::new("dpkg-deb")
        .arg("-x")
        .arg(busybox_deb)
        .arg(&unpack));
    let wanted = [
        "fs/ext4/*",
        "fs/overlayfs/*",
        "fs/erofs/*",
        "drivers/virtio/*",
        "drivers/block/virtio_blk.ko",
    ]
    .map(|m| format!("'./lib/modules/{kver}/kernel/{m}'"))
    .join(" ");
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "dpkg-deb --fsys-tarfile \"$DEB\" | tar -x -C \"$OUT\" --wildcards {wanted}"
        ))
        .env("DEB", kernel_deb)
        .env("OUT", &unpack)
        .status()
        .unwrap();
    assert!(status.success(), "extracting modules for the initramfs");
    for d in [
        "bin", "sbin", "etc", "proc", "sys", "dev", "sysroot", "usr/lib",
    ] {
        fs::create_dir_all(stage.join(d)).unwrap();
    }
    fs::copy(unpack.join("bin/busybox"), stage.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", stage.join("bin/sh")).unwrap();
    run(Command::new("cp")
        .arg("-a")
        .arg(unpack.join("lib/modules"))
        .arg(stage.join("usr/lib/")));
    std::os::unix::fs::symlink("usr/lib", stage.join("lib")).unwrap();
    fs::write(stage.join("init"), "#!/bin/sh\nmount -t proc proc /proc\nmount -t sysfs sys /sys\nmodprobe erofs\nmodprobe overlay\necho bootseal test initramfs\nexec sh\n").unwrap();
    run(Command::new("chmod").arg("755").arg(stage.join("init")));
    fs::write(stage.join("etc/initrd-release"), "NAME=bootseal-initrd\n").unwrap();
    let out = work.join("initramfs.img");
    let status = Command::new("sh")
        .arg("-c")
        .arg("find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | zstd -q -3 -c > \"$OUT\"")
        .env("OUT", &out)
        .current_dir(&stage)
        .status()
        .unwrap();
    assert!(status.success(), "building the initramfs with cpio");
    out
}

/// The realistic image, built on first use and cached.
pub fn realistic_image() -> Realistic {
    let _guard = BUILD.lock().unwrap_or_else(|p| p.into_inner());
    for tool in ["apt-get", "apt-cache", "dpkg-deb", "cpio", "zstd", "tar"] {
        super::require_tool(tool);
    }
    let cache = cache_dir();
    let debs = cache.join("debs");
    fs::create_dir_all(&debs).unwrap();
    let kernel_pkg = kernel_package();
    let kver = kernel_pkg.trim_start_matches("linux-image-").to_string();
    let kernel_deb = deb(&debs, &kernel_pkg);
    let layout = cache.join(format!("layout-{kver}"));
    let work = cache.join("work");
    let vmlinuz = work.join("vmlinuz");
    let initramfs = work.join("initramfs.img");
    if layout.join("complete").exists() {
        return Realistic {
            image: BuiltImage::load(&layout, TAG),
            kver,
            vmlinuz,
            initramfs,
        };
    }
    let package_debs: Vec<PathBuf> = PACKAGES.iter().map(|p| deb(&debs, p)).collect();
    fs::create_dir_all(&work).unwrap();
    let busybox = package_debs.last().unwrap().clone();
    let built_initramfs = build_initramfs(&work, &busybox, &kernel_deb, &kver);
    assert_eq!(built_initramfs, initramfs);

    let mut split = LayerSplitter::new();
    split.current.get_mut().extend_from_slice(&{
        let b = base_layer(&kver);
        b[..b.len() - 1024].to_vec()
    });
    split.cut();
    copy_package(&mut split, &kernel_deb, &kver);
    split.cut();
    for deb in &package_debs {
        copy_package(&mut split, deb, &kver);
        split.cut();
    }
    // The kernel the way bootc images ship it, plus the initramfs.
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "dpkg-deb --fsys-tarfile \"$DEB\" | tar -xO ./boot/vmlinuz-{kver} > \"$OUT\""
        ))
        .env("DEB", &kernel_deb)
        .env("OUT", &vmlinuz)
        .status()
        .unwrap();
    assert!(status.success(), "extracting vmlinuz");
    let kernel_image = fs::read(&vmlinuz).unwrap();
    assert!(
        kernel_image.len() > 1_000_000,
        "vmlinuz not found in {}",
        kernel_deb.display()
    );
    split.add(E::file(&format!("usr/lib/modules/{kver}/vmlinuz"), kernel_image).mode(0o644));
    split.add(
        E::file(
            &format!("usr/lib/modules/{kver}/initramfs.img"),
            fs::read(&initramfs).unwrap(),
        )
        .mode(0o600),
    );
    split.cut();
    // A typical last build step: metadata changes and deletions.
    split.add(E::dir("usr/share").mtime(1_700_000_900));
    split.add(E::whiteout("usr/share/doc"));
    split.add(E::dir("var/lib/bootseal"));
    split.add(E::file("var/lib/bootseal/stamp", "built\n"));
    split.cut();

    let image = OciImage {
        layers: split.layers,
        architecture: "amd64".into(),
        os: "linux".into(),
    };
    let tmp = cache.join("layout-incoming");
    let _ = fs::remove_dir_all(&tmp);
    image.write(&tmp, TAG);
    fs::write(tmp.join("complete"), b"").unwrap();
    let _ = fs::remove_dir_all(&layout);
    fs::rename(&tmp, &layout).unwrap();
    Realistic {
        image: BuiltImage::load(&layout, TAG),
        kver,
        vmlinuz,
        initramfs,
    }
}
