//! The EROFS image the digest is computed over, read by its real consumers: `fsck.erofs`
//! (erofs-utils) checks it, and the Linux kernel (the Debian kernel the tests boot, in QEMU)
//! mounts it, V1 and V2. What the kernel then shows for every path (type and mode, owner, link
//! count, size, device numbers, mtime, symlink target, extended attributes) must be the tree
//! the layers built, as composefs-rs's own dumpfile of that tree describes it; regular files
//! larger than 64 bytes must carry the overlay redirect to their fs-verity object.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use bootseal::digest::{DigestOptions, ErofsVersion};
use composefs::fsverity::{FsVerityHashValue, Sha512HashValue};
use composefs::tree::{Directory, FileSystem, Inode, LeafContent, RegularFile};

use crate::common;
use crate::common::image_builder::E;

/// Entries that exercise the writer: inline and external files at the size edges, a
/// directory spanning several blocks, deep nesting, hardlinks across directories, every
/// special file type (a character device 0:0 among them, which V1 stores escaped), xattrs,
/// odd modes, owners and sub-second mtimes, a root entry named like a V1 whiteout stub.
fn feature_entries() -> Vec<E> {
    let mut e = vec![
        E::dir("usr/share"),
        E::dir("usr/share/t").mode(0o1777).owner(1000, 100),
        E::file("0f", "a root file named like a whiteout stub\n"),
    ];
    for size in [0usize, 1, 63, 64, 65, 4095, 4096, 4097, 8192, 100_000] {
        let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        e.push(E::file(&format!("usr/share/t/f{size}"), data).pax_mtime("1700000600.25"));
    }
    e.push(E::file("usr/share/t/suid", vec![b'x'; 300]).mode(0o4755));
    e.push(
        E::file("usr/share/t/cap", vec![b'c'; 100])
            // cap_net_raw+ep, VFS_CAP_REVISION_2 (20 bytes; the kernel refuses other sizes).
            .xattr(
                "security.capability",
                &[1, 0, 0, 2, 0, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            )
            .xattr("user.note", b"kept or not, as composefs-oci decides"),
    );
    e.push(E::hardlink("usr/share/t/hl", "usr/share/t/f65"));
    e.push(E::hardlink("usr/bin/hl-elsewhere", "usr/share/t/f65"));
    e.push(E::hardlink("usr/share/t/hl-inline", "usr/share/t/f1"));
    e.push(E::symlink("usr/share/t/sl", "f1"));
    e.push(E::symlink("usr/share/t/sl-long", &"x/".repeat(500)));
    e.push(E::fifo("usr/share/t/fifo"));
    e.push(E::chardev("usr/share/t/null", 1, 3));
    e.push(E::blockdev("usr/share/t/sda", 8, 0));
    e.push(E::chardev("usr/share/t/whiteout-like", 0, 0));
    e.push(E::file(
        &format!("usr/share/t/{}", "n".repeat(255)),
        "long name\n",
    ));
    e.push(E::dir("usr/share/big"));
    for i in 0..400 {
        e.push(E::file(
            &format!("usr/share/big/entry-{i:04}-{}", "abcdefgh".repeat(i % 4)),
            format!("{i}\n"),
        ));
    }
    let mut deep = String::from("usr/share/deep");
    for i in 0..30 {
        e.push(E::dir(&deep).mtime(1_700_000_000 + i));
        deep.push_str("/d");
    }
    e.push(E::dir(&deep));
    e.push(E::file(&format!("{deep}/leaf"), "at the bottom\n"));
    e
}

/// One line of the guest's lister (testdata/erofs/lister.c), keyed by path.
type Listing = BTreeMap<String, Vec<String>>;

fn parse_listing(console: &str, tag: &str) -> Listing {
    let begin = format!("GUEST-LIST-BEGIN {tag}");
    let end = format!("GUEST-LIST-END {tag}");
    let text = console
        .split_once(&begin)
        .and_then(|(_, rest)| rest.split_once(&end))
        .unwrap_or_else(|| panic!("no {tag} listing in the console output:\n{console}"))
        .0;
    text.lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| l.starts_with('/'))
        .map(|l| {
            let fields: Vec<String> = l.split('\t').map(str::to_string).collect();
            assert_eq!(fields.len(), 10, "malformed lister line {l:?}");
            (fields[0].clone(), fields[1..].to_vec())
        })
        .collect()
}

/// Names of the xattrs composefs-rs's writer adds for overlayfs (not part of the tree).
const OVERLAY_MACHINERY: &[&str] = &[
    "trusted.overlay.metacopy",
    "trusted.overlay.redirect",
    "trusted.overlay.opaque",
    "trusted.overlay.overlay.whiteout",
    "trusted.overlay.overlay.whiteouts",
    "trusted.overlay.overlay.opaque",
    "user.overlay.whiteout",
    "user.overlay.whiteouts",
    "user.overlay.opaque",
];

fn rdev_parts(rdev: u64) -> String {
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
    let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
    format!("{major}:{minor}")
}

/// What the kernel must show for the tree: the same fields as the lister, and for each
/// external file the redirect path composefs stores.
struct Expected {
    lines: Listing,
    redirects: BTreeMap<String, String>,
    /// Character devices 0:0 (overlay whiteouts), which V1 stores escaped.
    whiteouts: Vec<String>,
}

fn expected(fs: &FileSystem<Sha512HashValue>) -> Expected {
    let nlinks = fs.nlinks();
    let mut out = Expected {
        lines: BTreeMap::new(),
        redirects: BTreeMap::new(),
        whiteouts: Vec::new(),
    };
    let xattrs = |stat: &composefs::tree::Stat| -> Vec<(String, String)> {
        stat.xattrs
            .iter()
            .map(|(k, v)| {
                let k = k.to_string_lossy().into_owned();
                // composefs escapes the tree's own overlay xattrs (writer.rs, 0.9.0).
                let k = match k.strip_prefix("trusted.overlay.") {
                    Some(rest) => format!("trusted.overlay.overlay.{rest}"),
                    None => k,
                };
                (k, hex::encode(v))
            })
            .collect()
    };
    let mut pending: Vec<(String, &Directory<Sha512HashValue>)> = vec![(String::new(), &fs.root)];
    while let Some((path, dir)) = pending.pop() {
        let subdirs = dir
            .sorted_entries()
            .filter(|(_, i)| matches!(i, Inode::Directory(_)))
            .count();
        let shown = if path.is_empty() {
            "/".to_string()
        } else {
            path.clone()
        };
        let mut x = xattrs(&dir.stat);
        x.sort();
        out.lines.insert(
            shown,
            vec![
                format!("{:o}", 0o040000 | dir.stat.st_mode),
                dir.stat.st_uid.to_string(),
                dir.stat.st_gid.to_string(),
                (2 + subdirs).to_string(),
                "*".into(), // a directory's size is its EROFS dirent bytes
                "0:0".into(),
                format!("{}.{:09}", dir.stat.st_mtim_sec, dir.stat.st_mtim_nsec),
                "-".into(),
                x.iter().map(|(k, v)| format!("{k}={v};")).collect(),
            ],
        );
        for (name, inode) in dir.sorted_entries() {
            let child = format!("{path}/{}", name.to_string_lossy());
            match inode {
                Inode::Directory(sub) => pending.push((child, sub)),
                Inode::Leaf(id, _) => {
                    let leaf = fs.leaf(*id);
                    let (kind, size, rdev, target) = match &leaf.content {
                        LeafContent::Regular(RegularFile::External(oid, size)) => {
                            out.redirects
                                .insert(child.clone(), format!("/{}", oid.to_object_pathname()));
                            (0o100000, *size, "0:0".to_string(), "-".to_string())
                        }
                        LeafContent::Regular(RegularFile::Inline(d)) => {
                            (0o100000, d.len() as u64, "0:0".into(), "-".into())
                        }
                        LeafContent::Regular(_) => panic!("{child}: unexpected file kind"),
                        LeafContent::Symlink(t) => (
                            0o120000,
                            t.len() as u64,
                            "0:0".into(),
                            hex::encode(OsStr::as_bytes(t)),
                        ),
                        LeafContent::CharacterDevice(r) => {
                            if *r == 0 {
                                out.whiteouts.push(child.clone());
                            }
                            (0o020000, 0, rdev_parts(*r), "-".into())
                        }
                        LeafContent::BlockDevice(r) => (0o060000, 0, rdev_parts(*r), "-".into()),
                        LeafContent::Fifo => (0o010000, 0, "0:0".into(), "-".into()),
                        LeafContent::Socket => (0o140000, 0, "0:0".into(), "-".into()),
                    };
                    let mut x = xattrs(&leaf.stat);
                    x.sort();
                    out.lines.insert(
                        child,
                        vec![
                            format!("{:o}", kind | leaf.stat.st_mode),
                            leaf.stat.st_uid.to_string(),
                            leaf.stat.st_gid.to_string(),
                            nlinks[id.0].to_string(),
                            size.to_string(),
                            rdev,
                            format!("{}.{:09}", leaf.stat.st_mtim_sec, leaf.stat.st_mtim_nsec),
                            target,
                            x.iter().map(|(k, v)| format!("{k}={v};")).collect(),
                        ],
                    );
                }
            }
        }
    }
    out
}

/// The kernel's view of one image against the tree; returns how many paths were compared.
fn compare(version: &str, seen: &Listing, want: &Expected) -> usize {
    let mut stubs = 0;
    for (path, fields) in seen {
        let Some(expected) = want.lines.get(path) else {
            // V1's 256 overlay whiteout stubs in the root ("00".."ff", chr 0:0), minus names
            // the tree already has.
            assert!(
                version == "v1" && path.len() == 3 && fields[0] == "20644" && fields[5] == "0:0",
                "{version}: the kernel shows {path} {fields:?}, which is not in the tree"
            );
            stubs += 1;
            continue;
        };
        let mut xattrs: Vec<(String, String)> = fields[8]
            .split(';')
            .filter(|s| !s.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect();
        if let Some(redirect) = want.redirects.get(path) {
            let got = xattrs
                .iter()
                .find(|(k, _)| k == "trusted.overlay.redirect")
                .map(|(_, v)| String::from_utf8(hex::decode(v).unwrap()).unwrap());
            assert_eq!(got.as_deref(), Some(redirect.as_str()), "{version}: {path}");
        }
        let mut expected = expected.clone();
        if version == "v1" && want.whiteouts.contains(path) {
            // V1 (like C mkcomposefs) stores a whiteout as an empty regular file marked for
            // overlayfs, so a plain mount shows a file (composefs writer.rs, 0.9.0).
            assert!(
                xattrs
                    .iter()
                    .any(|(k, _)| k == "trusted.overlay.overlay.whiteout"),
                "v1: {path} lacks its whiteout marker: {xattrs:?}"
            );
            expected[0] = format!(
                "{:o}",
                0o100000 | (u32::from_str_radix(&expected[0], 8).unwrap() & 0o7777)
            );
        }
        if version == "v2" {
            // V2 stores whole seconds only (composefs writer.rs, 0.9.0: "Epoch2 does not store
            // sub-second mtime precision").
            let secs = expected[6].split('.').next().unwrap().to_string();
            expected[6] = format!("{secs}.000000000");
        }
        xattrs.retain(|(k, _)| !OVERLAY_MACHINERY.contains(&k.as_str()));
        xattrs.sort();
        let mut got = fields.clone();
        got[8] = xattrs.iter().map(|(k, v)| format!("{k}={v};")).collect();
        if expected[4] == "*" {
            got[4] = "*".into();
        }
        assert_eq!(got, expected, "{version}: {path} as the kernel shows it");
    }
    for path in want.lines.keys() {
        assert!(
            seen.contains_key(path),
            "{version}: {path} missing in the mount"
        );
    }
    if version == "v1" {
        assert_eq!(stubs, 255, "v1: whiteout stubs (256 minus the tree's /0f)");
    }
    seen.len()
}

#[test]
fn the_kernel_mounts_our_erofs_and_sees_the_tree() {
    common::require_tool("fsck.erofs");
    common::require_tool("gcc");
    let tmp = common::scratch();
    let dir = tmp.path();
    let (img, _, _, _) = common::bootc_image::layers(dir, feature_entries());
    let image = img.write(&dir.join("layout"), "features");

    let mut disks = Vec::new();
    let mut trees = Vec::new();
    for (name, version) in [("v1", ErofsVersion::V1), ("v2", ErofsVersion::V2)] {
        let report = common::our_digest(
            &image,
            &DigestOptions {
                erofs_version: version,
                keep_erofs: true,
                keep_dumpfile: true,
                ..Default::default()
            },
        )
        .unwrap();
        let erofs = report.erofs.unwrap();
        // The digest is the fs-verity digest of exactly these bytes.
        let id: Sha512HashValue = composefs::fsverity::compute_verity(&erofs);
        assert_eq!(id.to_hex(), report.digest_hex, "{name}");
        let path = dir.join(format!("{name}.erofs"));
        std::fs::write(&path, &erofs).unwrap();
        let fsck = common::run_ok(std::process::Command::new("fsck.erofs").arg(&path));
        assert!(fsck.status.success(), "fsck.erofs {name}");
        let fs = composefs::dumpfile::dumpfile_to_filesystem::<Sha512HashValue>(
            &report.dumpfile.unwrap(),
        )
        .unwrap();
        disks.push(path);
        trees.push((name, expected(&fs)));
    }

    let lister = dir.join("lister");
    let cc = common::run_ok(
        std::process::Command::new("gcc")
            .args(["-static", "-O1", "-o"])
            .arg(&lister)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/erofs/lister.c")),
    );
    assert!(cc.status.success());
    let console = common::kernel_vm::run_script(
        common::kernel_vm::EROFS,
        &[(lister, "/lister".to_string())],
        &disks,
        "for i in $(seq 100); do [ -b /dev/vdb ] && break; sleep 0.1; done\n\
         for v in v1:vda v2:vdb; do\n\
           t=${v%:*}; d=${v#*:}; mkdir -p /mnt/$t\n\
           mount -t erofs -o ro /dev/$d /mnt/$t || echo \"GUEST: mount $t failed\"\n\
           echo GUEST-LIST-BEGIN $t; /lister /mnt/$t; echo GUEST-LIST-END $t\n\
         done",
    );
    assert!(!console.contains("failed"), "console:\n{console}");
    for (name, want) in &trees {
        let seen = parse_listing(&console, name);
        let compared = compare(name, &seen, want);
        assert!(compared > 450, "{name}: only {compared} paths listed");
    }
}
