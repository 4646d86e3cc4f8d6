//! Applies parsed layers, strictly in layer order, to one composefs tree.
//!
//! The overlay semantics (whiteouts, opaque markers at the point they appear, directory merge
//! keeping children, hardlinks sharing a leaf) are composefs-oci 0.9.0's own
//! `image::process_entry`. This module only checks the preconditions that function would fail
//! on, so the error can say in one line what is wrong with which path.

use std::path::{Component, Path};

use composefs::generic_tree::{ImageError, LeafContent};
use composefs::tree::{FileSystem, Stat};
use composefs_oci::tar::{TarEntry, TarItem};

use super::capture::Stash;
use super::parse::ParsedLayer;
use super::path::{check_limits, shorten_for_message};
use super::{EntryError, ObjectId};

/// The tree under construction plus the stashed contents of captured files.
pub struct TreeBuilder {
    pub fs: FileSystem<ObjectId>,
    pub stash: Stash,
}

impl Default for TreeBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl TreeBuilder {
    /// An empty tree whose root has the placeholder stat composefs-oci starts from.
    pub fn new() -> Self {
        Self {
            fs: FileSystem::new(Stat::uninitialized()),
            stash: Stash::new(),
        }
    }

    /// Applies one layer's entries in stream order.
    pub fn apply(&mut self, layer: ParsedLayer) -> Result<(), EntryError> {
        for (id, blob) in layer.stash {
            self.stash.entry(id).or_insert(blob);
        }
        for entry in layer.entries {
            self.apply_entry(entry)?;
        }
        Ok(())
    }

    fn apply_entry(&mut self, entry: TarEntry<ObjectId>) -> Result<(), EntryError> {
        let shown = display_path(&entry.path);
        // The parser checked this already; checked again because a `ParsedLayer` may come from
        // elsewhere and the tree's depth is what keeps the recursive walks off the stack's end.
        check_limits(&entry.path).map_err(|e| EntryError::at(shown.clone(), e))?;
        if entry.path.file_name().is_some() {
            let parent = entry.path.parent().unwrap_or(Path::new("/"));
            match self.fs.root.get_directory_opt(parent.as_os_str()) {
                Ok(Some(_)) => {}
                Ok(None) => {
                    return Err(EntryError::at(
                        shown,
                        format!("parent directory {} does not exist", display_path(parent)),
                    ));
                }
                Err(e) => return Err(EntryError::at(shown, describe(e))),
            }
        }
        if let TarItem::Hardlink(target) = &entry.item {
            let target_path = Path::new(target);
            let found = self
                .fs
                .root
                .split(target.as_os_str())
                .and_then(|(dir, name)| dir.leaf_id(name));
            match found {
                // composefs-rs's EROFS writer requires an overlay whiteout (character device
                // 0:0) to have one link (`validate_filesystem`; a debug assertion otherwise).
                Ok(id) if matches!(self.fs.leaf(id).content, LeafContent::CharacterDevice(0)) => {
                    return Err(EntryError::at(
                        shown,
                        format!(
                            "hardlink target {} is a character device 0:0 (an overlay \
                             whiteout), which composefs cannot hardlink",
                            display_path(target_path)
                        ),
                    ));
                }
                Ok(_) => {}
                Err(ImageError::IsADirectory(_)) => {
                    return Err(EntryError::at(
                        shown,
                        format!(
                            "hardlink target {} is a directory",
                            display_path(target_path)
                        ),
                    ));
                }
                Err(_) => {
                    return Err(EntryError::at(
                        shown,
                        format!(
                            "hardlink target {} does not exist",
                            display_path(target_path)
                        ),
                    ));
                }
            }
        }
        composefs_oci::image::process_entry(&mut self.fs, entry)
            .map_err(|e| EntryError::at(shown, format!("{e:#}")))
    }
}

fn describe(e: ImageError) -> String {
    match e {
        ImageError::NotADirectory(name) => {
            format!(
                "parent component {} is not a directory",
                name.to_string_lossy()
            )
        }
        other => other.to_string(),
    }
}

/// A tree path as users expect to read it in a message: `/usr/bin`, `/` for the root, a very
/// long one shortened.
pub fn display_path(path: &Path) -> String {
    let mut s = String::new();
    for c in path.components() {
        if let Component::Normal(n) = c {
            s.push('/');
            s.push_str(&n.to_string_lossy());
        }
    }
    if s.is_empty() {
        "/".to_string()
    } else {
        shorten_for_message(s)
    }
}
