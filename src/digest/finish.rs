//! From the applied tree to the digest: OCI transform, boot transform, SELinux, EROFS.
//!
//! The boot transform is composefs-boot 0.9.0's. `transform_for_boot(&repo)` would also run
//! `get_boot_resources`, which needs every boot file's bytes; instead
//! `transform_for_boot_from_dir` on an empty directory empties `/boot` and `/sysroot` (and
//! strips labels), and `selabel::selabel` then labels the tree from the tree's own policy, the
//! way `transform_for_boot(&repo)` does, reading the external policy files from a throw-away
//! repository that holds only the stashed policy objects. Labels are recomputed from scratch
//! there, so the earlier strip does not change the outcome (composefs-boot `selabel.rs`).

use std::ffi::OsStr;
use std::time::{Duration, Instant};

use composefs::fsverity::FsVerityHashValue;
use composefs::generic_tree::LeafContent;
use composefs::repository::{Repository, RepositoryConfig};
use composefs::tree::{Directory, FileSystem, Inode, RegularFile};
use composefs_boot::BootOps;

use super::{ComposefsCompat, DigestOptions, ErofsVersion, Timings};
use crate::tree::capture::Stash;
use crate::tree::path::shorten_for_message;
use crate::tree::{CapturedFiles, ObjectId, TreeBuilder};

pub(crate) struct Finished {
    pub digest_hex: String,
    pub timings: Timings,
    pub warnings: Vec<String>,
    pub captured: CapturedFiles,
    pub erofs: Option<Vec<u8>>,
    pub dumpfile: Option<String>,
}

/// Stack for [`finish`]. composefs-rs walks the tree recursively (OCI and boot transforms,
/// SELinux labelling, the dumpfile writer, and freeing the tree), one frame or more per
/// directory level (bootseal's EROFS writer does not recurse); the tree is at most
/// [`crate::tree::path::MAX_DEPTH`] deep. At that depth the test build was measured to
/// overflow 4 MiB and to pass with 6 MiB (composefs-oci's own pipeline overflows the 2 MiB of a
/// test or tokio thread there too), so 64 MiB leaves a tenfold margin whatever thread the
/// caller is on (`tests/it/digest_hostile.rs` runs it from a 2 MiB test thread). Only the pages
/// actually touched are committed.
pub(super) const FINISH_STACK: usize = 64 << 20;

/// Runs [`finish`] on a thread of its own with [`FINISH_STACK`], so the depth it can handle
/// does not depend on the caller's thread (test threads and tokio workers have 2 MiB).
pub(crate) fn finish_on_own_stack(
    tree: TreeBuilder,
    opts: &DigestOptions,
) -> Result<Finished, String> {
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("bootseal-digest".to_string())
            .stack_size(FINISH_STACK)
            .spawn_scoped(scope, move || finish(tree, opts))
            .map_err(|e| format!("starting the digest thread: {e}"))?;
        worker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

fn finish(tree: TreeBuilder, opts: &DigestOptions) -> Result<Finished, String> {
    let start = Instant::now();
    let TreeBuilder { mut fs, stash } = tree;
    let captured = CapturedFiles::collect(&fs, &opts.capture, &stash);

    let usr = match fs.root.get_directory_opt(OsStr::new("usr")) {
        Ok(Some(usr)) => usr.stat.clone(),
        _ => return Err("image has no /usr directory".to_string()),
    };
    for dir in ["boot", "sysroot"] {
        if !matches!(fs.root.get_directory_opt(OsStr::new(dir)), Ok(Some(_))) {
            return Err(format!(
                "image has no /{dir} directory (composefs-boot requires /boot and /sysroot)"
            ));
        }
    }
    let mut warnings = Vec::new();
    if opts.erofs_version == ErofsVersion::V1 {
        warnings.extend(subsecond_mtime_warnings(&fs, usr.st_mtim_nsec, opts.compat));
    }

    fs.transform_for_oci(&Default::default())
        .map_err(|e| format!("OCI transform: {e}"))?;
    boot_transform(&mut fs, &stash)?;
    if opts.compat == ComposefsCompat::V0_9_4 {
        copy_usr_nanoseconds(&mut fs)?;
    }
    check_xattr_sizes(&fs)?;
    let transforms = start.elapsed();

    let erofs_start = Instant::now();
    // bootseal's writer (src/erofs), byte-identical to composefs-rs's `compute_image_bytes`:
    // the image streams into the fs-verity hasher and is kept only when asked for.
    let (id, image) = crate::erofs::image_digest(&fs, opts.erofs_version.format(), opts.keep_erofs)
        .map_err(|e| format!("EROFS image: {e}"))?;
    let erofs_time = erofs_start.elapsed();

    let dumpfile = if opts.keep_dumpfile {
        let mut out = Vec::new();
        composefs::dumpfile::write_dumpfile(&mut out, &fs).map_err(|e| format!("dumpfile: {e}"))?;
        // composefs escapes every byte outside printable ASCII, so this is valid UTF-8 and
        // becomes a String without a copy (200k entries make a dumpfile of ~40 MB).
        Some(
            String::from_utf8(out)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        )
    } else {
        None
    };
    Ok(Finished {
        digest_hex: id.to_hex(),
        timings: Timings {
            transforms,
            erofs: erofs_time,
            layers: Duration::ZERO,
            total: Duration::ZERO,
        },
        warnings,
        captured,
        erofs: image,
        dumpfile,
    })
}

/// composefs-rs 0.9.0 (bootc 1.16.7–1.16.9) keeps the sub-second mtime of the emptied /boot and
/// /sysroot; 0.9.4 copies /usr's. With V1 (which stores nanoseconds) the two give different
/// digests exactly when they differ (composefs-boot `empty_toplevel_dirs`, 0.9.0 vs 0.9.4), so
/// say which one this is.
fn subsecond_mtime_warnings(
    fs: &FileSystem<ObjectId>,
    usr_nsec: u32,
    compat: ComposefsCompat,
) -> Vec<String> {
    let (this, other) = match compat {
        ComposefsCompat::V0_9_0 => ("0.9.0 (bootc 1.16.7-1.16.9)", "0.9.4"),
        ComposefsCompat::V0_9_4 => ("0.9.4", "0.9.0"),
    };
    ["boot", "sysroot"]
        .into_iter()
        .filter_map(|name| {
            let dir = fs.root.get_directory_opt(OsStr::new(name)).ok()??;
            (dir.stat.st_mtim_nsec != usr_nsec).then(|| {
                format!(
                    "/{name} has a sub-second mtime (.{:09}) different from /usr's (.{usr_nsec:09}): \
                     this V1 digest follows composefs-rs {this}; hosts whose bootc links \
                     composefs-rs {other} compute another one (--composefs-compat {other})",
                    dir.stat.st_mtim_nsec
                )
            })
        })
        .collect()
}

/// composefs-rs 0.9.4's `empty_toplevel_dirs` also gives /boot and /sysroot /usr's nanoseconds.
fn copy_usr_nanoseconds(fs: &mut FileSystem<ObjectId>) -> Result<(), String> {
    let nsec = fs
        .root
        .get_directory(OsStr::new("usr"))
        .map_err(|e| format!("/usr: {e}"))?
        .stat
        .st_mtim_nsec;
    for name in ["boot", "sysroot"] {
        fs.root
            .get_directory_mut(OsStr::new(name))
            .map_err(|e| format!("/{name}: {e}"))?
            .stat
            .st_mtim_nsec = nsec;
    }
    Ok(())
}

fn boot_transform(fs: &mut FileSystem<ObjectId>, stash: &Stash) -> Result<(), String> {
    let empty = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let empty_fd =
        std::fs::File::open(empty.path()).map_err(|e| format!("temporary directory: {e}"))?;
    fs.transform_for_boot_from_dir(&empty_fd)
        .map_err(|e| format!("boot transform: {e:#}"))?;

    let repo_dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let (repo, _) = Repository::<ObjectId>::init_path(
        rustix::fs::CWD,
        repo_dir.path().join("repo"),
        RepositoryConfig::new(composefs::fsverity::Algorithm::SHA512).set_insecure(),
    )
    .map_err(|e| format!("temporary policy repository: {e:#}"))?;
    let mut missing = Vec::new();
    if let Ok(Some(selinux)) = fs.root.get_directory_opt(OsStr::new("etc/selinux")) {
        store_policy_objects(fs, selinux, stash, &repo, &mut missing)?;
    }
    composefs_boot::selabel::selabel(fs, &repo).map_err(|e| {
        let mut msg = format!("SELinux labelling: {e:#}");
        if !missing.is_empty() {
            msg.push_str(&format!(
                " (policy files not captured: {})",
                missing.join(", ")
            ));
        }
        msg
    })?;
    Ok(())
}

/// Longest extended attribute name and value the EROFS writer can record: it stores the name's
/// length in a byte and the value's in 16 bits and, like composefs-rs's writer
/// (`erofs::writer::XAttr::write`) that it matches byte for byte, would silently truncate them. Linux's own limits (XATTR_NAME_MAX 255, XATTR_SIZE_MAX 65536)
/// mean no real file carries more.
const XATTR_NAME_MAX: usize = 255;
const XATTR_VALUE_MAX: usize = u16::MAX as usize;

/// Refuses xattrs the EROFS image cannot hold. Checked after the transforms because only
/// what survives them (`security.capability` from the layers, `security.selinux` from the
/// image's policy) is written; an oversized `user.*` attribute that is stripped is harmless.
pub(super) fn check_xattr_sizes(fs: &FileSystem<ObjectId>) -> Result<(), String> {
    let problem = |stat: &composefs::tree::Stat| -> Option<String> {
        stat.xattrs.iter().find_map(|(name, value)| {
            let shown = name.to_string_lossy();
            if name.len() > XATTR_NAME_MAX {
                Some(format!(
                    "extended attribute name {:.64}… is {} bytes, more than the limit of \
                     {XATTR_NAME_MAX}",
                    shown,
                    name.len()
                ))
            } else if value.len() > XATTR_VALUE_MAX {
                Some(format!(
                    "extended attribute {shown} is {} bytes, more than the limit of \
                     {XATTR_VALUE_MAX} an EROFS image can hold",
                    value.len()
                ))
            } else {
                None
            }
        })
    };
    // An explicit stack instead of recursion, like every walk over a layer-shaped tree here;
    // paths are only spelled out for the message.
    let mut pending: Vec<(&Directory<ObjectId>, String)> = vec![(&fs.root, String::new())];
    while let Some((dir, path)) = pending.pop() {
        if let Some(p) = problem(&dir.stat) {
            let shown = if path.is_empty() { "/" } else { &path };
            return Err(format!("{}: {p}", shorten_for_message(shown.to_string())));
        }
        for (name, inode) in dir.sorted_entries() {
            match inode {
                Inode::Directory(sub) => {
                    pending.push((sub, format!("{path}/{}", name.to_string_lossy())))
                }
                Inode::Leaf(id, _) => {
                    if let Some(p) = problem(&fs.leaf(*id).stat) {
                        let shown = format!("{path}/{}", name.to_string_lossy());
                        return Err(format!("{}: {p}", shorten_for_message(shown)));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Writes the stashed contents of every external file below /etc/selinux to `repo`.
fn store_policy_objects(
    fs: &FileSystem<ObjectId>,
    dir: &Directory<ObjectId>,
    stash: &Stash,
    repo: &Repository<ObjectId>,
    missing: &mut Vec<String>,
) -> Result<(), String> {
    for (name, inode) in dir.sorted_entries() {
        match inode {
            Inode::Directory(sub) => store_policy_objects(fs, sub, stash, repo, missing)?,
            Inode::Leaf(id, _) => {
                if let LeafContent::Regular(RegularFile::External(oid, _)) = &fs.leaf(*id).content {
                    match stash.get(oid) {
                        Some(blob) => {
                            let data = blob.to_vec().map_err(|e| format!("stashed file: {e}"))?;
                            let stored = repo
                                .ensure_object(&data)
                                .map_err(|e| format!("temporary policy repository: {e:#}"))?;
                            debug_assert_eq!(&stored, oid);
                        }
                        None => missing.push(name.to_string_lossy().into_owned()),
                    }
                }
            }
        }
    }
    Ok(())
}
